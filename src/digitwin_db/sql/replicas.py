"""SQL of the read-replica router (``_async/replicas.py``) and of the test harness's
streaming standby (``testing.py``): WAL positions and replay state."""

from __future__ import annotations

from typing import LiteralString

# The primary's current WAL insert position: every commit that returned is at or before it
# (with synchronous_commit off too, unlike pg_current_wal_lsn, the write position).
PRIMARY_POSITION: LiteralString = "SELECT pg_current_wal_insert_lsn()::text"

# Has this standby replayed the WAL up to the given position? (true on a primary, where
# pg_last_wal_replay_lsn() is NULL)
REPLAYED: LiteralString = "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, true)"

# A standby's state: in recovery, last replayed position, age of its last replayed transaction.
REPLICA_STATE: LiteralString = """
SELECT pg_is_in_recovery(),
       pg_last_wal_replay_lsn()::text,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
"""

# Bytes between two WAL positions (the primary's, a standby's replayed one).
LAG_BYTES: LiteralString = "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint"

# Pause / resume WAL replay on a standby (the test harness makes it lag on demand).
PAUSE_REPLAY: LiteralString = "SELECT pg_wal_replay_pause()"
RESUME_REPLAY: LiteralString = "SELECT pg_wal_replay_resume()"

# Is the server answering? (the test harness waits for pgbouncer or a standby to be ready)
PING: LiteralString = "SELECT 1"
