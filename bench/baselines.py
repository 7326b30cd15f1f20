"""The baselines digitwin-db is compared with.

- *bare psycopg*: one autocommit connection, ``prepare=True``, one statement per operation,
  on tables created ``LIKE`` the package's own (same columns, indexes, UNLOGGED-ness), with
  the key hash computed in Python — the least a hand-written PostgreSQL cache can do.
- *redis-py*: ``GET`` / ``SET EX`` on a local Redis, decoding the value to the same Python
  object the cache returns (``json.loads``; float32 bytes to ``list[float]``).
- *limits*: ``MovingWindowRateLimiter`` on ``RedisStorage``.
- *pyrate-limiter*: ``PostgresBucket`` (a psycopg_pool ``ConnectionPool``) behind a
  ``Limiter``, ``try_acquire(name, blocking=False)``.

The table names start with ``bench_`` so that they never touch the package's tables.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# Tables of the same shape as the package's, for the bare-psycopg baseline.
CREATE_BARE_TABLES = """
CREATE UNLOGGED TABLE IF NOT EXISTS bench_kv (LIKE kv_cache INCLUDING ALL);
CREATE UNLOGGED TABLE IF NOT EXISTS bench_embedding (LIKE embedding_cache INCLUDING ALL);
CREATE UNLOGGED TABLE IF NOT EXISTS bench_llm (LIKE llm_response_cache INCLUDING ALL);
CREATE TABLE IF NOT EXISTS bench_rate_limits (LIKE rate_limits INCLUDING ALL)
    WITH (fillfactor = 70);
CREATE UNLOGGED TABLE IF NOT EXISTS bench_rate_limits_unlogged (LIKE rate_limits INCLUDING ALL)
    WITH (fillfactor = 70);
"""

# Primary-key lookup of a key/value entry.
BARE_KV_GET = "SELECT value_json FROM bench_kv WHERE key_hash = %s"
# Primary-key lookup of an embedding (float32 bytes).
BARE_EMBEDDING_GET = "SELECT embedding FROM bench_embedding WHERE key_hash = %s"
# Primary-key lookup of an LLM response with its metadata.
BARE_LLM_GET = "SELECT response, metadata, hit_count, created_at FROM bench_llm WHERE key_hash = %s"
# Upsert of a key/value entry with a TTL.
BARE_KV_SET = """
INSERT INTO bench_kv (key_hash, namespace, key, value_json, byte_size, expires_at)
VALUES (%s, 'default', %s, %s, %s, now() + make_interval(secs => %s))
ON CONFLICT (key_hash) DO UPDATE
SET value_json = EXCLUDED.value_json, byte_size = EXCLUDED.byte_size,
    updated_at = now(), expires_at = EXCLUDED.expires_at
"""
# Token bucket in one upsert: refill by server time, take one token when there is one. A
# statement that started before a concurrent one moved refilled_at sees a negative elapsed
# time: clamped to 0, and refilled_at never moves backwards.
BARE_RATE_LIMIT = """
INSERT INTO bench_rate_limits AS b (user_id, endpoint, capacity, refill_rate, tokens, refilled_at)
VALUES (%(user)s, %(endpoint)s, %(capacity)s, %(rate)s, %(capacity)s - 1, now())
ON CONFLICT (user_id, endpoint) DO UPDATE
SET tokens = CASE WHEN {level} >= 1 THEN {level} - 1 ELSE {level} END,
    refilled_at = greatest(b.refilled_at, now()),
    allowed_count = b.allowed_count + ({level} >= 1)::int,
    denied_count = b.denied_count + ({level} < 1)::int
RETURNING tokens
""".replace(
    "{level}",
    "least(b.capacity, b.tokens"
    " + greatest(0, extract(epoch FROM now() - b.refilled_at)::float8) * b.refill_rate)",
)


# The same upsert on an UNLOGGED copy: what the limiter would cost without WAL.
BARE_RATE_LIMIT_UNLOGGED = BARE_RATE_LIMIT.replace(
    "INTO bench_rate_limits AS b", "INTO bench_rate_limits_unlogged AS b"
)


def key_hash(namespace: str, key: str) -> int:
    """Signed 64-bit hash of a key (blake2b), the bare baseline's primary key."""
    digest = hashlib.blake2b(f"{namespace}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def floats_from_bytes(data: bytes) -> list[float]:
    """float32 little-endian bytes to a list of Python floats."""
    values = array("f")
    values.frombytes(data)
    return values.tolist()


def floats_to_bytes(values: list[float]) -> bytes:
    return array("f", values).tobytes()


def bare_connection(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


async def bare_async_connection(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


def create_bare_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CREATE_BARE_TABLES)


def fill_bare_kv(conn: psycopg.Connection[Any], keys: list[str], value: Any) -> None:
    """Store ``value`` under every key (no expiry)."""
    payload = json.dumps(value)
    with conn.cursor() as cur:
        with cur.copy(
            "COPY bench_kv (key_hash, namespace, key, value_json, byte_size) FROM STDIN"
        ) as copy:
            for key in keys:
                copy.write_row((key_hash("default", key), "default", key, payload, len(payload)))


def fill_bare_embeddings(
    conn: psycopg.Connection[Any], texts: list[str], vector: list[float], model: str
) -> None:
    blob = floats_to_bytes(vector)
    with conn.cursor() as cur:
        for text in texts:
            cur.execute(
                "INSERT INTO bench_embedding (key_hash, model, text, dimensions, embedding,"
                " byte_size, expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + interval '1 day')",
                (key_hash(model, text), model, text, len(vector), blob, len(blob)),
            )


def fill_bare_llm(
    conn: psycopg.Connection[Any],
    prompts: list[str],
    response: str,
    metadata: dict[str, Any],
    model: str,
) -> None:
    with conn.cursor() as cur:
        for prompt in prompts:
            cur.execute(
                "INSERT INTO bench_llm (key_hash, model, prompt, response, metadata, byte_size,"
                " expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + interval '1 day')",
                (
                    key_hash(model, prompt),
                    model,
                    prompt,
                    response,
                    Jsonb(metadata),
                    len(response),
                ),
            )
