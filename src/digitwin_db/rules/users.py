"""Rules of user accounts (pure checks, no I/O): email, traits, tier, updatable fields."""

from __future__ import annotations

import re
from typing import Any

from digitwin_db.errors import ValidationError
from digitwin_db.models.users import SUBSCRIPTION_TIERS
from digitwin_db.validation import check_aware_datetime, check_choice, check_text, json_param

# The same shape as the users_email_format CHECK: something@something, no blanks.
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200
MAX_TRAITS = 50
MAX_TRAIT_LENGTH = 200


def check_email(value: object) -> str:
    """A plausible address (``local@domain``, 3..320 characters); stored as given, compared
    case-insensitively."""
    email = check_text(value, "email", max_length=MAX_EMAIL_LENGTH)
    if len(email) < 3 or not _EMAIL_RE.match(email):
        raise ValidationError(f"email must look like name@domain, got {email[:60]!r}")
    return email


def check_traits(value: object) -> list[str]:
    """A list (or tuple) of at most 50 non-empty strings."""
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise ValidationError(
            f"personality_traits must be a list of strings, got {type(value).__name__}"
        )
    if len(value) > MAX_TRAITS:
        raise ValidationError(f"personality_traits has too many items ({len(value)} > 50)")
    return [
        check_text(t, f"personality_traits[{i}]", max_length=MAX_TRAIT_LENGTH)
        for i, t in enumerate(value)
    ]


def check_tier(value: object) -> str:
    return check_choice(value, "subscription_tier", SUBSCRIPTION_TIERS)


#: update(**changes): the whitelist of columns and the check each value goes through.
UPDATERS: dict[str, Any] = {
    "email": check_email,
    "name": lambda v: check_text(v, "name", max_length=MAX_NAME_LENGTH),
    "personality_traits": check_traits,
    "preferences": lambda v: json_param(v, "preferences"),
    "settings": lambda v: json_param(v, "settings"),
    "subscription_tier": check_tier,
    "last_active_at": lambda v: check_aware_datetime(v, "last_active_at"),
}
