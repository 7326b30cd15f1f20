"""Which calls a replica may serve, and how routing decisions are counted (no I/O: shared
by the async and sync replica routers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["PRIMARY_ONLY_MESSAGE", "READ_METHODS", "RoutingCounters", "read_only_message"]

#: Per repository, the methods that only read: the ones a replica view exposes. Every
#: other method of these repositories writes and stays on ``factory.<repository>``.
READ_METHODS: dict[str, frozenset[str]] = {
    "users": frozenset({"get", "get_by_email", "find", "list", "count", "export"}),
    "voice_models": frozenset({"get", "find", "list_for_user", "get_active"}),
    "face_models": frozenset({"get", "find", "list_for_user", "get_active"}),
    "sessions": frozenset({"get", "find", "get_with_turns", "list_for_user", "statistics"}),
    "documents": frozenset({"get", "find", "list_for_user", "search"}),
    "audit_logs": frozenset({"query", "statistics"}),
}

PRIMARY_ONLY_MESSAGE = (
    "factory.replica().{name} does not exist: caches and rate limits always use the "
    "primary (their tables are UNLOGGED, so a standby has no rows for them and refuses to "
    "read them); use factory.{name}"
)


def read_only_message(repository: str, method: str) -> str:
    """Why a replica view refuses ``repository.method``."""
    reads = ", ".join(sorted(READ_METHODS[repository]))
    return (
        f"factory.replica().{repository}.{method} is not available: replica repositories "
        f"are read-only (they offer {reads}); call factory.{repository}.{method} instead"
    )


@dataclass
class RoutingCounters:
    """Where replica-view calls ran, since the factory was built."""

    #: Served by a replica.
    replica: int = 0
    #: Read-your-writes call whose replica had not replayed the primary's position yet.
    primary_lagging: int = 0
    #: Every replica was unreachable (``replica_fallback="primary"``).
    primary_replica_down: int = 0
    #: No replica configured (``REPLICA_URLS`` empty).
    primary_no_replica: int = 0
    #: Every replica was unreachable and ``replica_fallback="raise"``.
    refused: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
