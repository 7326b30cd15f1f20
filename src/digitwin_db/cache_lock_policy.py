"""Rules of ``cache.lock()`` shared by both APIs (pure Python, no I/O): errors, owner
tokens and the back-off between attempts to take a held lock."""

from __future__ import annotations

import random
import secrets

from digitwin_db.cache_codec import check_positive_seconds
from digitwin_db.errors import DigitwinDBError

__all__ = [
    "LockError",
    "LockNotOwnedError",
    "LockTimeoutError",
    "check_lock_timeout",
    "new_owner_token",
    "next_delay",
]

#: First and longest pause (seconds) between attempts to take a held lock.
FIRST_DELAY = 0.002
MAX_DELAY = 0.1


class LockError(DigitwinDBError):
    """A ``cache.lock()`` could not do what was asked."""


class LockTimeoutError(LockError, TimeoutError):
    """The lock was not acquired within ``timeout`` seconds."""


class LockNotOwnedError(LockError):
    """Release or extend of a lock this holder no longer owns (it expired, and maybe
    another holder took it over): the work done under it was not exclusive to the end."""


def new_owner_token() -> str:
    """A random owner token (128 bits): only its holder can release or extend the lock."""
    return secrets.token_hex(16)


def next_delay(previous: float) -> float:
    """The pause after ``previous``: doubling up to MAX_DELAY, with jitter (±50 %) so that
    waiters started together do not retry in lockstep."""
    base = min(MAX_DELAY, max(FIRST_DELAY, previous * 2))
    return base * (0.5 + random.random())  # jitter, not security


def check_lock_timeout(timeout: object) -> float | None:
    """None (wait for ever) or a finite number of seconds >= 0 (0: one attempt)."""
    if timeout is None:
        return None
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout == 0:
        return 0.0
    return check_positive_seconds(timeout, "timeout")
