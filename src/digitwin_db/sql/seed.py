"""SQL of the demo-data seed (``digitwin_db.seed``): only its lock. The data itself goes
through the public repositories."""

from __future__ import annotations

from typing import LiteralString

# The key of the seed's session-level advisory lock: two seeds started at once (two hosts
# running scripts/init_db.sh) run one after the other instead of both creating the data.
SEED_LOCK_KEY = 0x5EED_D1C1_7A1E

# Wait for, then hold, the seed lock on this connection until SEED_UNLOCK.
SEED_LOCK: LiteralString = "SELECT pg_advisory_lock(%(key)s)"

# Release the seed lock.
SEED_UNLOCK: LiteralString = "SELECT pg_advisory_unlock(%(key)s)"
