"""Key hashing for the L2 cache's hot paths (pure, no I/O).

The same 64-bit ``key_hash`` as :func:`digitwin_db.cache_codec.hash_key` (blake2b, 8 bytes,
personalised per cache) of ``prefix + data``, with the personalised, prefixed hash state
built once per namespace (or model) and copied per key: about half the cost per key of a
fresh ``blake2b(...)``, which shows in ``get_many`` (≈ 0.6 vs 1.3 µs a key).
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

__all__ = ["PrefixHasher"]


class PrefixHasher:
    """``hash_key(person, prefix + data)`` for many ``data`` of one ``prefix``."""

    __slots__ = ("_copy",)

    def __init__(self, person: bytes, prefix: bytes) -> None:
        self._copy = blake2b(prefix, digest_size=8, person=person).copy

    def __call__(self, data: bytes) -> int:
        state = self._copy()
        state.update(data)
        return int.from_bytes(state.digest(), "big", signed=True)

    def array(self, keys: Iterable[str]) -> str:
        """The hashes of ``keys`` (UTF-8, already validated) as a PostgreSQL ``bigint[]``
        literal (bind it with a ``::bigint[]`` cast; see ``cache_codec.bigint_array``)."""
        copy = self._copy
        from_bytes = int.from_bytes
        out = []
        for key in keys:
            state = copy()
            state.update(key.encode())
            out.append(str(from_bytes(state.digest(), "big", signed=True)))
        return "{" + ",".join(out) + "}"
