"""Rules of the cleanup job (pure, no I/O): reading a repository's cleanup report."""

from __future__ import annotations

from typing import Any


def rows_per_table(report: Any) -> dict[str, int]:
    """Rows removed per table from a repository's cleanup report."""
    if isinstance(report, int):
        return {"cache": report}
    data = report if isinstance(report, dict) else getattr(report, "removed", None)
    if not isinstance(data, dict):
        dump = getattr(report, "model_dump", None)
        data = dump() if callable(dump) else {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}
