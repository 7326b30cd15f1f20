"""Scenario results, targets, the printed table and the JSON document."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import Measurement


@dataclass
class Target:
    """A SPEC §4 bar: ``value`` compared with ``threshold`` (``>=`` or ``<=``)."""

    description: str
    value: float | None
    threshold: float
    op: str = ">="

    @property
    def met(self) -> bool | None:
        if self.value is None or math.isnan(self.value):
            return None
        return self.value >= self.threshold if self.op == ">=" else self.value <= self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "met": self.met,
        }


@dataclass
class Scenario:
    """One scenario: the subject (digitwin-db) and its baselines, measured side by side."""

    key: str
    title: str
    subject: str
    results: dict[str, Measurement] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    extra: dict[str, float | int | str] = field(default_factory=dict)
    note: str = ""
    # How ratios read: "ops" (subject ops/s ÷ baseline ops/s, higher is better).
    ratio_kind: str = "ops"

    def ratio(self, baseline: str, subject: str | None = None) -> float | None:
        """Subject ops/s divided by ``baseline`` ops/s (None when either is missing): the
        median of the per-round ratios when both ran the same interleaved rounds (drift of
        a shared machine then hits both sides of each ratio alike), else of the medians."""
        mine = self.results.get(subject or self.subject)
        other = self.results.get(baseline)
        if mine is None or other is None or other.ops_per_s <= 0:
            return None
        if mine.round_ops and len(mine.round_ops) == len(other.round_ops):
            pairs = zip(mine.round_ops, other.round_ops, strict=True)
            return statistics.median(a / b for a, b in pairs if b > 0)
        return mine.ops_per_s / other.ops_per_s

    def ratios(self) -> dict[str, float | None]:
        return {
            name: self.ratio(name)
            for name in [*self.results, *self.skipped]
            if name != self.subject
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "subject": self.subject,
            "results": {name: m.as_dict() for name, m in self.results.items()},
            "skipped": dict(self.skipped),
            "ratios": self.ratios(),
            "targets": [t.as_dict() for t in self.targets],
            "extra": dict(self.extra),
            "note": self.note,
        }


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "n/a"}[met]


def render_table(scenarios: list[Scenario], header: dict[str, Any]) -> str:
    """A Markdown table (readable on a terminal, pasteable into bench/README.md)."""
    lines: list[str] = []
    m = header.get("machine", {})
    lines.append(
        f"Machine: {m.get('nproc')} CPUs, {m.get('cpu')}; PostgreSQL {m.get('postgresql')}; "
        f"Redis {header.get('redis_version') or 'skipped'}; Python {m.get('python')}, "
        f"psycopg {m.get('psycopg')}; mode {header.get('mode')}"
    )
    lines.append(f"Server: {m.get('postgresql_settings')}")
    lines.append(
        f"Load average (1, 5, 15 min) at start {m.get('loadavg_at_start')}, "
        f"at end {m.get('loadavg_at_end')}; run took {header.get('seconds')} s"
    )
    lines.append("")
    lines.append("| scenario | contender | ops/s | p50 µs | p99 µs | digitwin-db ÷ this (ops/s) |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for sc in scenarios:
        first = True
        for name, meas in sc.results.items():
            ratio = "—" if name == sc.subject else _fmt(sc.ratio(name), 2) + "x"
            lines.append(
                f"| {sc.title if first else ''} | {name} | {_fmt(meas.ops_per_s)} | "
                f"{_fmt(meas.p50_us, 1)} | {_fmt(meas.p99_us, 1)} | {ratio} |"
            )
            first = False
        for name, reason in sc.skipped.items():
            lines.append(f"| {sc.title if first else ''} | {name} | skipped: {reason} | | | |")
            first = False
    lines.append("")
    lines.append("| SPEC §4 target | measured | bar | verdict |")
    lines.append("|---|---:|---:|---|")
    for sc in scenarios:
        for t in sc.targets:
            lines.append(
                f"| {t.description} | {_fmt(t.value, 2)} | {t.op} {t.threshold:g} | "
                f"{_verdict(t.met)} |"
            )
    extras = [(sc, k, v) for sc in scenarios for k, v in sc.extra.items()]
    if extras:
        lines.append("")
        for sc, k, v in extras:
            shown = _fmt(v, 2) if isinstance(v, float) else str(v)
            lines.append(f"- {sc.title}: {k} = {shown}")
    notes = [sc for sc in scenarios if sc.note]
    if notes:
        lines.append("")
        for sc in notes:
            lines.append(f"- {sc.title}: {sc.note}")
    return "\n".join(lines)


def write_json(path: Path, scenarios: list[Scenario], header: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**header, "scenarios": {sc.key: sc.as_dict() for sc in scenarios}}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
