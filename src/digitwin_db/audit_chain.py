"""The audit hash chain, recomputed independently of the database (pure code, no I/O).

Every audit row carries ``chain_seq`` (1, 2, 3, … in commit order), ``pii_hash``,
``prev_hash`` and ``row_hash`` (migrations/0006_audit_chain.sql computes them on INSERT):

- ``pii_hash = sha256(F(user_id) F(resource_id) F(ip_address) F(user_agent) F(metadata))``
- ``row_hash = sha256(prev_hash || F(chain_seq) F(id) F(created_at) F(action)
  F(resource_type) F(result) F(hex(pii_hash)))``

where ``F(text)`` is ``"<UTF-8 octets>:<text>"`` and ``F(NULL)`` is ``"~"``, over the text
forms the database gives (``created_at`` as UTC ``YYYY-MM-DDTHH:MM:SS.ffffff``,
``metadata::text``, ``ip_address::text``). The first row's ``prev_hash`` is 32 zero bytes.
A retention purge leaves an *anchor* (seq, row_hash) for the last row of every run it
deletes, so the next surviving row still links to something (so does the retention of the
month-partitioned table, migration 0015: dropping a partition anchors every dropped row
whose successor survives); GDPR anonymisation clears the
personal fields but keeps ``pii_hash`` (and sets ``anonymised_at``).

:class:`ChainVerifier` takes the rows in ``chain_seq`` order and reports the first broken
link: a row altered, deleted or inserted out of band (e.g. by the owner with the triggers
disabled). Each anchor below the head must be followed by a surviving row (the purge and
the partition drop forget the anchors they no longer need), so deleting the run after an
anchor is found too. What no chain can show is the removal of the oldest rows together
with their anchors: keep ``audit head`` (and the anchors, ``audit verify`` counts them)
outside the database for that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "GENESIS",
    "ChainBreak",
    "ChainRow",
    "ChainVerifier",
    "field",
    "pii_hash",
    "row_hash",
]

#: The prev_hash of the first row of the chain.
GENESIS = bytes(32)


def field(value: str | None) -> str:
    """The canonical encoding of one field: ``"<octets>:<text>"``, NULL as ``"~"``."""
    if value is None:
        return "~"
    return f"{len(value.encode('utf-8'))}:{value}"


@dataclass(frozen=True)
class ChainRow:
    """One audit row as verify reads it: the text forms the hashes cover."""

    id: int
    chain_seq: int | None
    created_at: str
    action: str
    resource_type: str | None
    result: str
    user_id: str | None
    resource_id: str | None
    ip_address: str | None
    user_agent: str | None
    metadata: str
    anonymised: bool
    pii_hash: bytes | None
    prev_hash: bytes | None
    row_hash: bytes | None


def pii_hash(row: ChainRow) -> bytes:
    """sha256 of the row's personal fields."""
    text = "".join(
        field(v) for v in (row.user_id, row.resource_id, row.ip_address, row.user_agent)
    ) + field(row.metadata)
    return hashlib.sha256(text.encode("utf-8")).digest()


def row_hash(row: ChainRow, prev: bytes, pii: bytes) -> bytes:
    """sha256 of the previous hash and the row's content."""
    text = "".join(
        field(v)
        for v in (
            str(row.chain_seq),
            str(row.id),
            row.created_at,
            row.action,
            row.resource_type,
            row.result,
            pii.hex(),
        )
    )
    return hashlib.sha256(prev + text.encode("utf-8")).digest()


@dataclass(frozen=True)
class ChainBreak:
    """The first broken link: the row (None when the tail or head is at fault) and why."""

    id: int | None
    chain_seq: int | None
    reason: str
    #: What is at fault when it is neither a row nor the head (e.g. "the anchors").
    where: str | None = None

    def __str__(self) -> str:
        where = f"row id {self.id} (seq {self.chain_seq})" if self.id is not None else "the head"
        return f"{self.where or where}: {self.reason}"


class ChainVerifier:
    """Feed the rows in ``chain_seq`` order (rows without a link first), then
    :meth:`finish` with the stored head. Each returns the first :class:`ChainBreak`, or
    None while the chain holds. ``anchors`` maps purged seq -> row_hash."""

    def __init__(self, anchors: Mapping[int, bytes]) -> None:
        self.anchors = dict(anchors)
        # Anchors a surviving row linked to. A purge or partition drop forgets every anchor
        # whose successor it removed too, so each anchor below the head has its successor
        # row: one without it means that row (and maybe more) went out of band.
        self.used_anchors: set[int] = set()
        self.rows = 0
        self.last_seq: int | None = None
        self.last_hash: bytes | None = None

    def _expected_prev(self, row: ChainRow, seq: int) -> bytes | ChainBreak:
        if self.last_seq is not None and self.last_hash is not None and seq == self.last_seq + 1:
            return self.last_hash
        if self.last_seq is not None and seq <= self.last_seq:
            return ChainBreak(row.id, seq, f"chain_seq {seq} appears twice")
        if seq - 1 in self.anchors:
            self.used_anchors.add(seq - 1)
            return self.anchors[seq - 1]
        if seq == 1:
            return GENESIS
        first_missing = 1 if self.last_seq is None else self.last_seq + 1
        return ChainBreak(
            row.id,
            seq,
            f"rows with chain_seq {first_missing}..{seq - 1} are missing and no purge "
            "recorded them (deleted out of band)",
        )

    def feed(self, row: ChainRow) -> ChainBreak | None:
        seq = row.chain_seq
        if seq is None or row.prev_hash is None or row.row_hash is None or row.pii_hash is None:
            return ChainBreak(
                row.id, seq, "the row has no chain link (inserted with the chain trigger off)"
            )
        expected = self._expected_prev(row, seq)
        if isinstance(expected, ChainBreak):
            return expected
        if row.prev_hash != expected:
            return ChainBreak(row.id, seq, "prev_hash does not match the previous row's hash")
        if row.anonymised:
            # Its personal fields were cleared on purpose: pii_hash stands for them, and the
            # anonymisation leaves an empty metadata object.
            if row.metadata != "{}":
                return ChainBreak(row.id, seq, "an anonymised row holds metadata again")
        elif pii_hash(row) != row.pii_hash:
            return ChainBreak(row.id, seq, "the personal fields were altered")
        if row_hash(row, row.prev_hash, row.pii_hash) != row.row_hash:
            return ChainBreak(row.id, seq, "the row was altered (its hash does not match)")
        self.rows += 1
        self.last_seq, self.last_hash = seq, row.row_hash
        return None

    def finish(self, head_seq: int | None, head_hash: bytes | None) -> ChainBreak | None:
        unused = sorted(
            seq
            for seq in self.anchors
            if seq not in self.used_anchors and head_seq is not None and seq < head_seq
        )
        if unused:
            return ChainBreak(
                None,
                unused[0] + 1,
                f"the row with chain_seq {unused[0] + 1}, after a purged run, is missing and "
                "no purge recorded it (deleted out of band)",
                where="the anchors",
            )
        if head_seq is None or head_hash is None:
            if self.last_seq is None:
                return None
            return ChainBreak(None, None, "rows exist but the chain head is missing")
        if self.last_seq == head_seq:
            if head_hash != self.last_hash:
                return ChainBreak(None, head_seq, "the head's hash differs from the last row's")
            return None
        if self.last_seq is not None and head_seq < self.last_seq:
            return ChainBreak(None, head_seq, f"the head is behind the last row ({self.last_seq})")
        # The newest rows were purged (then an anchor holds the head) or deleted out of band.
        if self.anchors.get(head_seq) == head_hash:
            return None
        after = 0 if self.last_seq is None else self.last_seq
        return ChainBreak(
            None,
            head_seq,
            f"rows with chain_seq {after + 1}..{head_seq} are missing and no purge "
            "recorded them (deleted out of band)",
        )
