"""State of the read replicas (``factory.replica_status()``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ReplicaStatus"]


class ReplicaStatus(BaseModel):
    """One replica: reachable and a standby (``ok``), and how far behind the primary it is.

    ``lag_bytes``: WAL the primary has written that the replica has not replayed yet.
    ``replay_delay_seconds``: age of the last transaction the replica replayed (grows while
    the primary is idle too, so read it together with ``lag_bytes``).
    """

    model_config = ConfigDict(frozen=True)

    target: str
    ok: bool
    in_recovery: bool | None = None
    lag_bytes: int | None = None
    replay_delay_seconds: float | None = None
    error: str | None = None
