"""Rules of the audit trail (pure checks, no I/O): action names, results, addresses and
the limits of the table's columns."""

from __future__ import annotations

import contextlib
import ipaddress

from digitwin_db.errors import ValidationError
from digitwin_db.models.audit import AUDIT_RESULTS
from digitwin_db.validation import (
    check_choice,
    check_int_range,
    check_number,
    check_text,
    shown,
)

# Limits of the table's CHECK constraints, checked here first so that bad input fails
# with a clear message before any SQL runs.
ACTION_MAX = 100
RESOURCE_TYPE_MAX = 100
RESOURCE_ID_MAX = 200
USER_AGENT_MAX = 1024
_ACTION_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-")
# purge_older_than(days): beyond ~a million years PostgreSQL's interval overflows.
MAX_RETENTION_DAYS = 1_000_000
# Rows deleted per statement by the purge: small enough to hold locks briefly.
DEFAULT_PURGE_BATCH = 5000
TOP_USERS = 10


def check_optional_text(value: object, field: str, max_len: int) -> str | None:
    # Not stripped: an audit entry keeps exactly what it was given.
    return None if value is None else check_text(value, field, max_length=max_len, strip=False)


def check_action(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("action must be a non-empty string such as 'user.created'")
    if len(value) > ACTION_MAX or not set(value) <= _ACTION_CHARS:
        raise ValidationError(
            f"action {shown(value)} is invalid: 1 to {ACTION_MAX} characters among "
            "letters, digits and _ . : / -"
        )
    return value


def check_result(value: object) -> str:
    return check_choice(value, "result", AUDIT_RESULTS)


def check_ip(value: object) -> str | None:
    if value is None:
        return None
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        address = value
    elif isinstance(value, str) and len(value) <= 100:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(value.strip())
    # inet has no place for an IPv6 zone ("fe80::1%eth0").
    if address is not None and getattr(address, "scope_id", None) is None:
        return str(address)
    raise ValidationError(f"ip_address must be an IPv4 or IPv6 address, got {shown(value)}")


def check_retention_args(
    days: object, batch_size: object, max_batches: object
) -> tuple[float, int, int | None]:
    """The retention methods' arguments (``purge_older_than``, ``apply_retention``),
    checked before any SQL."""
    checked_days = check_number(days, "days", minimum=0, maximum=MAX_RETENTION_DAYS)
    checked_batch = check_int_range(batch_size, "batch_size", 1, 1_000_000)
    checked_max = (
        None if max_batches is None else check_int_range(max_batches, "max_batches", 1, 2**31)
    )
    return checked_days, checked_batch, checked_max
