"""SQL of the L2 cache tables (see migrations/0002_cache.sql).

Every lookup names the row by ``key_hash`` (the primary key, computed in Python) AND compares
the full key, so a hash collision can never serve another key's value; an expired row is
filtered out by the lookup itself, so it is never returned even before cleanup removes it.
Hot reads are one statement each (autocommit, prepared by psycopg, results in binary).
The reads end with ``ttl_left``, the seconds the row has left by the server's clock (NULL:
no expiry): the near cache keeps a copy no longer than its row, whatever the clock of the
host that keeps it (the L2 reads ignore it).
"""

from __future__ import annotations

from typing import LiteralString

from psycopg import sql

from digitwin_db.cache_registry import CACHES

# ---------------------------------------------------------------- embedding_cache

# One live embedding by (model, text): float32 bytes, ttl_left.
EMBEDDING_GET: LiteralString = """
SELECT embedding, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM embedding_cache
WHERE key_hash = %(key_hash)s AND model = %(model)s AND text = %(text)s AND expires_at >
    now()
"""

# Live embeddings for many texts of one model: one primary-key probe per hash (= ANY), the
# caller keeps the rows whose full text it asked for (a hash collision is dropped there).
EMBEDDING_GET_MANY: LiteralString = """
SELECT text, embedding, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM embedding_cache
WHERE key_hash = ANY (%(key_hashes)s::bigint[]) AND model = %(model)s AND expires_at > now()
"""

# Store (or replace) embeddings of one model and one dimension (one or many rows, all or
# none) unless the model has live embeddings of another dimension ("mismatch": two range
# probes of embedding_cache_model_dims_idx, dimensions below and above, which find nothing
# in the usual case). Returns (a conflicting stored dimension or NULL, rows stored).
EMBEDDING_SET: LiteralString = """
WITH mismatch AS ((SELECT dimensions
        FROM embedding_cache
        WHERE model = %(model)s AND dimensions < %(dimensions)s AND expires_at > now()
        LIMIT 1)
    UNION ALL (SELECT dimensions
        FROM embedding_cache
        WHERE model = %(model)s AND dimensions > %(dimensions)s AND expires_at > now()
        LIMIT 1)), stored AS (INSERT INTO embedding_cache AS c (key_hash, model, text,
            dimensions, embedding, byte_size, created_at, expires_at)
    SELECT k.key_hash, %(model)s, k.text, %(dimensions)s, k.embedding, k.byte_size, now(),
        now() + %(ttl)s::float8 * interval '1 second'
    FROM unnest(%(key_hashes)s::bigint[], %(texts)s::text[], %(embeddings)s::bytea[],
        %(byte_sizes)s::integer[]) AS k(key_hash, text, embedding, byte_size)
    WHERE NOT EXISTS (SELECT 1 FROM mismatch)
    ON CONFLICT (key_hash)
    DO UPDATE SET model = EXCLUDED.model, text = EXCLUDED.text,
        dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding,
        byte_size = EXCLUDED.byte_size, created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at
    RETURNING 1)
SELECT (SELECT min(dimensions) FROM mismatch), (SELECT count(*) FROM stored)
"""

# ---------------------------------------------------------------- vector_search_cache

# Live ranked hits for (index, query, params), ttl_left.
SEARCH_GET: LiteralString = """
SELECT hits, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM vector_search_cache
WHERE key_hash = %(key_hash)s AND index_name = %(index_name)s AND query = %(query)s AND
    params = %(params)s::jsonb AND expires_at > now()
"""

# Store (or replace) the ranked hits of one search.
SEARCH_SET: LiteralString = """
INSERT INTO vector_search_cache AS c (key_hash, index_name, query, params, hits, byte_size,
    created_at, expires_at)
VALUES (%(key_hash)s, %(index_name)s, %(query)s, %(params)s::jsonb, %(hits)s::jsonb,
    %(byte_size)s, now(), now() + %(ttl)s::float8 * interval '1 second')
ON CONFLICT (key_hash)
DO UPDATE SET index_name = EXCLUDED.index_name, query = EXCLUDED.query,
    params = EXCLUDED.params, hits = EXCLUDED.hits, byte_size = EXCLUDED.byte_size,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
"""

# ---------------------------------------------------------------- llm_response_cache

# One live LLM response for (model, prompt, params) with its flushed hit count, ttl_left.
LLM_GET: LiteralString = """
SELECT response, metadata, hit_count, created_at, expires_at,
    EXTRACT(EPOCH FROM expires_at - now())::float8
FROM llm_response_cache
WHERE key_hash = %(key_hash)s AND model = %(model)s AND prompt = %(prompt)s AND
    params = %(params)s::jsonb AND expires_at > now()
"""

# Store (or replace) one LLM response; a replaced response starts again at 0 hits.
LLM_SET: LiteralString = """
INSERT INTO llm_response_cache AS c (key_hash, model, prompt, params, response, metadata,
    hit_count, last_hit_at, byte_size, created_at, expires_at)
VALUES (%(key_hash)s, %(model)s, %(prompt)s, %(params)s::jsonb, %(response)s,
    %(metadata)s::jsonb, 0, NULL, %(byte_size)s, now(), now() + %(ttl)s::float8 *
    interval '1 second')
ON CONFLICT (key_hash)
DO UPDATE SET model = EXCLUDED.model, prompt = EXCLUDED.prompt, params = EXCLUDED.params,
    response = EXCLUDED.response, metadata = EXCLUDED.metadata, hit_count = 0,
    last_hit_at = NULL, byte_size = EXCLUDED.byte_size, created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at
"""

# ---------------------------------------------------------------- statistics

# Add in-process counters in one statement: LLM hit counts per entry (key hashes sorted, so
# concurrent flushers lock rows in the same order) and hits/misses per cache.
FLUSH_STATS: LiteralString = """
WITH llm AS (UPDATE llm_response_cache AS c SET hit_count = c.hit_count + h.hits,
    last_hit_at = now()
    FROM unnest(%(llm_hashes)s::bigint[], %(llm_hits)s::bigint[]) AS h(key_hash, hits)
    WHERE c.key_hash = h.key_hash
    RETURNING 1) INSERT INTO cache_stats AS s (cache_name, hits, misses, updated_at)
SELECT n.cache_name, n.hits, n.misses, now()
FROM unnest(%(names)s::text[], %(hits)s::bigint[], %(misses)s::bigint[]) AS n(cache_name,
    hits, misses)
ON CONFLICT (cache_name)
DO UPDATE SET hits = s.hits + EXCLUDED.hits, misses = s.misses + EXCLUDED.misses,
    updated_at = now()
"""

# Flushed hit/miss counters of every cache.
STATS_COUNTERS: LiteralString = "SELECT cache_name, hits, misses FROM cache_stats"

# Live entries and their bytes per cache, one UNION ALL branch per cache of the registry
# (full scans: an operator query, not a hot path).
STATS_SIZES = sql.SQL(" UNION ALL ").join(
    sql.SQL(
        "SELECT {name}, count(*), coalesce(sum(byte_size), 0)::bigint "
        "FROM {table} WHERE expires_at IS NULL OR expires_at > now()"
    ).format(name=sql.Literal(c.name), table=sql.Identifier(c.table))
    for c in CACHES
)

# ---------------------------------------------------------------- expiry and caps

# Delete one batch of expired rows of {table} in expiry-index order. Rows another cleaner
# has locked are skipped (it deletes them), so cleaners never wait on each other and every
# row is deleted exactly once.
CLEANUP_BATCH = sql.SQL(
    """
DELETE
FROM {table}
WHERE key_hash IN (SELECT key_hash
    FROM {table}
    WHERE expires_at <= now()
    ORDER BY expires_at
    LIMIT %(batch_size)s FOR UPDATE SKIP LOCKED)
"""
)

# Evict the oldest rows of {table} (by {age}) beyond max_entries rows or max_bytes bytes,
# counting from the newest; a NULL cap never matches.
EVICT_OVER_CAPS = sql.SQL(
    """
DELETE
FROM {table} AS c
USING (SELECT key_hash
    FROM (SELECT key_hash, row_number() OVER w AS n, sum(byte_size) OVER w AS running
        FROM {table}
        WINDOW w AS (ORDER BY {age} DESC, key_hash ROWS UNBOUNDED PRECEDING)) r
    WHERE r.n > %(max_entries)s::bigint OR r.running > %(max_bytes)s::bigint) AS victims
WHERE c.key_hash = victims.key_hash
"""
)

# ---------------------------------------------------------------- kv_cache

# One live value: JSON or bytes, ttl_left.
KV_GET: LiteralString = """
SELECT value_json::text, value_bytes, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM kv_cache
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s AND
    (expires_at IS NULL OR expires_at > now())
"""

# Live values of many keys of one namespace: one primary-key probe per hash (= ANY); the
# caller keeps the rows whose full key it asked for (a hash collision is dropped there).
KV_GET_MANY: LiteralString = """
SELECT key, value_json::text, value_bytes, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM kv_cache
WHERE key_hash = ANY (%(key_hashes)s::bigint[]) AND namespace = %(namespace)s AND
    (expires_at IS NULL OR expires_at > now())
"""

# Store (or replace) one value.
KV_SET: LiteralString = """
INSERT INTO kv_cache AS c (key_hash, namespace, key, value_json, value_bytes, tags,
    byte_size, created_at, updated_at, expires_at)
VALUES (%(key_hash)s, %(namespace)s, %(key)s, %(value_json)s::json, %(value_bytes)s,
    %(tags)s::text[], %(byte_size)s, now(), now(), now() + %(ttl)s::float8 *
    interval '1 second')
ON CONFLICT (key_hash)
DO UPDATE SET namespace = EXCLUDED.namespace, key = EXCLUDED.key,
    value_json = EXCLUDED.value_json, value_bytes = EXCLUDED.value_bytes,
    tags = EXCLUDED.tags, byte_size = EXCLUDED.byte_size, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
"""

# Store one value only if the key is absent (or its row is expired, or belongs to another
# key with the same hash); returns a row when stored.
KV_ADD: LiteralString = """
INSERT INTO kv_cache AS c (key_hash, namespace, key, value_json, value_bytes, tags,
    byte_size, created_at, updated_at, expires_at)
VALUES (%(key_hash)s, %(namespace)s, %(key)s, %(value_json)s::json, %(value_bytes)s,
    %(tags)s::text[], %(byte_size)s, now(), now(), now() + %(ttl)s::float8 *
    interval '1 second')
ON CONFLICT (key_hash)
DO UPDATE SET namespace = EXCLUDED.namespace, key = EXCLUDED.key,
    value_json = EXCLUDED.value_json, value_bytes = EXCLUDED.value_bytes,
    tags = EXCLUDED.tags, byte_size = EXCLUDED.byte_size, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
WHERE c.expires_at <= now() OR c.namespace <> EXCLUDED.namespace OR c.key <> EXCLUDED.key
RETURNING 1
"""

# Store (or replace) many values of one namespace in one statement.
KV_SET_MANY: LiteralString = """
INSERT INTO kv_cache AS c (key_hash, namespace, key, value_json, value_bytes, tags,
    byte_size, created_at, updated_at, expires_at)
SELECT k.key_hash, %(namespace)s, k.key, k.value_json::json, k.value_bytes,
    %(tags)s::text[], k.byte_size, now(), now(), now() + %(ttl)s::float8 *
    interval '1 second'
FROM unnest(%(key_hashes)s::bigint[], %(keys)s::text[], %(values_json)s::text[],
    %(values_bytes)s::bytea[], %(byte_sizes)s::integer[]) AS k(key_hash, key, value_json,
    value_bytes, byte_size)
ON CONFLICT (key_hash)
DO UPDATE SET namespace = EXCLUDED.namespace, key = EXCLUDED.key,
    value_json = EXCLUDED.value_json, value_bytes = EXCLUDED.value_bytes,
    tags = EXCLUDED.tags, byte_size = EXCLUDED.byte_size, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
"""

# Add %(amount)s to an integer value atomically (one upsert, row-locked), creating it at 0
# (with %(ttl)s: the caller's or the default TTL) when absent or expired; the TTL and tags of
# a live key are kept. A stored value that is not an integer's JSON text (a float such as
# 1e16 included) makes value_json NULL, which kv_cache_one_value refuses.
KV_INCR: LiteralString = """
INSERT INTO kv_cache AS c (key_hash, namespace, key, value_json, value_bytes, byte_size,
    created_at, updated_at, expires_at)
VALUES (%(key_hash)s, %(namespace)s, %(key)s, to_json(%(amount)s::bigint), NULL, 8, now(),
    now(), now() + %(ttl)s::float8 * interval '1 second')
ON CONFLICT (key_hash)
DO UPDATE SET value_json = CASE WHEN c.namespace = EXCLUDED.namespace AND
    c.key = EXCLUDED.key AND (c.expires_at IS NULL OR c.expires_at > now()) THEN CASE WHEN
    (c.value_json)::text ~ '^-?[0-9]{1,19}$' THEN
    to_json((c.value_json)::text::bigint + %(amount)s::bigint) END ELSE
    EXCLUDED.value_json END, value_bytes = NULL, byte_size = 8, updated_at = now(),
    tags = CASE WHEN c.namespace = EXCLUDED.namespace AND c.key = EXCLUDED.key AND
    (c.expires_at IS NULL OR c.expires_at > now()) THEN c.tags ELSE '{}' END,
    created_at = CASE WHEN c.namespace = EXCLUDED.namespace AND c.key = EXCLUDED.key AND
    (c.expires_at IS NULL OR c.expires_at > now()) THEN c.created_at ELSE now() END,
    expires_at = CASE WHEN c.namespace = EXCLUDED.namespace AND c.key = EXCLUDED.key AND
    (c.expires_at IS NULL OR c.expires_at > now()) THEN c.expires_at ELSE
    EXCLUDED.expires_at END, namespace = EXCLUDED.namespace, key = EXCLUDED.key
RETURNING (value_json)::text::bigint
"""

# Delete one key; returns whether the deleted row was live.
KV_DELETE: LiteralString = """
DELETE
FROM kv_cache
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s
RETURNING (expires_at IS NULL OR expires_at > now())
"""

# Seconds left before a live key expires (NULL: it never expires); no row: no live key.
KV_TTL: LiteralString = """
SELECT EXTRACT(EPOCH FROM expires_at - now())::float8
FROM kv_cache
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s AND
    (expires_at IS NULL OR expires_at > now())
"""

# Give a live key a new TTL; returns a row when the key exists.
KV_EXPIRE: LiteralString = """
UPDATE kv_cache
SET expires_at = now() + %(ttl)s::float8 * interval '1 second', updated_at = now()
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s AND
    (expires_at IS NULL OR expires_at > now())
RETURNING 1
"""

# Remove the expiry of a live key; returns a row when the key exists.
KV_PERSIST: LiteralString = """
UPDATE kv_cache
SET expires_at = NULL, updated_at = now()
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s AND
    (expires_at IS NULL OR expires_at > now())
RETURNING 1
"""

# Delete many keys of one namespace; returns how many of them were live.
KV_DELETE_MANY: LiteralString = """
WITH d AS (DELETE
    FROM kv_cache AS c
    USING unnest(%(key_hashes)s::bigint[], %(keys)s::text[]) AS k(key_hash, key)
    WHERE c.key_hash = k.key_hash AND c.key = k.key AND c.namespace = %(namespace)s
    RETURNING c.expires_at)
SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now())
FROM d
"""

# Delete every key of a namespace starting with %(prefix)s (compared literally by
# starts_with; the escaped LIKE pattern on left(key, 256) lets the prefix index narrow the
# scan). Returns how many were live.
KV_DELETE_PREFIX: LiteralString = """
WITH d AS (DELETE
    FROM kv_cache
    WHERE namespace = %(namespace)s AND left(key, 256) LIKE %(pattern)s AND starts_with(key,
        %(prefix)s)
    RETURNING expires_at)
SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now())
FROM d
"""

# Delete every key of a namespace carrying any of %(tags)s (GIN index, whose partial
# predicate the tags <> '{}' term matches). Returns how many were live.
KV_INVALIDATE_TAGS: LiteralString = """
WITH d AS (DELETE
    FROM kv_cache
    WHERE namespace = %(namespace)s AND tags <> '{}' AND tags && %(tags)s::text[]
    RETURNING expires_at)
SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now())
FROM d
"""

# Delete every key of a namespace; returns how many were live.
KV_CLEAR: LiteralString = """
WITH d AS (DELETE
    FROM kv_cache
    WHERE namespace = %(namespace)s
    RETURNING expires_at)
SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now())
FROM d
"""

# get_or_set: bound the wait for the stampede lock (this transaction only).
SET_LOCK_TIMEOUT: LiteralString = "SELECT set_config('lock_timeout', %(lock_timeout)s, true)"

# get_or_set: transaction-scoped advisory lock on the key (released at COMMIT/ROLLBACK, so
# it works behind PgBouncer in transaction mode). The two-int4 form, with a class id of
# its own, keeps it apart from other users of advisory locks.
ADVISORY_XACT_LOCK: LiteralString = "SELECT pg_advisory_xact_lock(%(class_id)s, %(object_id)s)"

# A live value by key hash alone (cache.kv.get): one bigint parameter; the caller compares
# namespace and key (a row that merely shares the hash is no hit).
KV_GET_BY_HASH: LiteralString = """
SELECT namespace, key, value_json::text, value_bytes
FROM kv_cache
WHERE key_hash = %s AND (expires_at IS NULL OR expires_at > now())
"""

# Concurrent cache.kv.get calls batched (digitwin_db.batching.HashProbe): KV_GET_BY_HASH for
# many hashes, one primary-key probe each.
KV_GET_BY_HASHES: LiteralString = """
SELECT namespace, key, value_json::text, value_bytes
FROM kv_cache
WHERE key_hash = ANY (%(key_hashes)s::bigint[])
    AND (expires_at IS NULL OR expires_at > now())
"""

# ---------------------------------------------------------------- kv: keys, compare-and-set

# One page of live keys of a namespace starting with %(prefix)s, after %(after)s in key_hash
# order (keyset pagination on the primary key: a key live through the whole walk is listed
# exactly once, and no connection or cursor is held between pages).
KV_KEYS_PAGE: LiteralString = """
SELECT key_hash, key
FROM kv_cache
WHERE namespace = %(namespace)s AND key_hash > %(after)s AND left(key, 256) LIKE %(pattern)s
    AND starts_with(key, %(prefix)s) AND (expires_at IS NULL OR expires_at > now())
ORDER BY key_hash
LIMIT %(page_size)s
"""

# compare_and_set / delete_if: the live value of one key, row-locked until the transaction
# ends (the comparison runs in Python, with the namespace's serializer).
KV_GET_FOR_UPDATE: LiteralString = """
SELECT value_json::text, value_bytes
FROM kv_cache
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s
    AND (expires_at IS NULL OR expires_at > now())
FOR UPDATE
"""

# compare_and_set: replace the value of the locked row; a NULL %(ttl)s keeps its expiry.
KV_REPLACE_VALUE: LiteralString = """
UPDATE kv_cache
SET value_json = %(value_json)s::json, value_bytes = %(value_bytes)s,
    byte_size = %(byte_size)s, updated_at = now(),
    expires_at = CASE WHEN %(ttl)s::float8 IS NULL THEN expires_at
        ELSE now() + %(ttl)s::float8 * interval '1 second' END
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s
"""

# delete_if: delete the locked row.
KV_DELETE_LOCKED: LiteralString = """
DELETE FROM kv_cache
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s
"""

# ---------------------------------------------------------------- cache.lock()

# Take the lock %(name)s for %(owner)s unless another owner holds it unexpired; an expired
# holder's row is taken over in the same statement. One autocommit statement: safe behind
# PgBouncer in transaction mode. Returns a row when taken.
LOCK_ACQUIRE: LiteralString = """
INSERT INTO cache_locks AS l (name, owner, acquired_at, expires_at)
VALUES (%(name)s, %(owner)s, now(), now() + %(ttl)s::float8 * interval '1 second')
ON CONFLICT (name)
DO UPDATE SET owner = EXCLUDED.owner, acquired_at = EXCLUDED.acquired_at,
    expires_at = EXCLUDED.expires_at
    WHERE l.expires_at <= now()
RETURNING 1
"""

# Release the lock if %(owner)s still holds it; returns whether it was still unexpired.
LOCK_RELEASE: LiteralString = """
DELETE FROM cache_locks
WHERE name = %(name)s AND owner = %(owner)s
RETURNING expires_at > now()
"""

# Extend the lock to %(ttl)s from now if %(owner)s still holds it unexpired.
LOCK_EXTEND: LiteralString = """
UPDATE cache_locks
SET expires_at = now() + %(ttl)s::float8 * interval '1 second'
WHERE name = %(name)s AND owner = %(owner)s AND expires_at > now()
RETURNING 1
"""

# Whether anyone holds the lock unexpired, and whether it is %(owner)s.
LOCK_STATE: LiteralString = """
SELECT owner = %(owner)s
FROM cache_locks
WHERE name = %(name)s AND expires_at > now()
"""

# ---------------------------------------------------------------- delete / clear by kind

# Delete one LLM response by its full key; returns whether the deleted row was live.
LLM_DELETE: LiteralString = """
DELETE FROM llm_response_cache
WHERE key_hash = %(key_hash)s AND model = %(model)s AND prompt = %(prompt)s
    AND params = %(params)s::jsonb
RETURNING expires_at > now()
"""

# Delete every row of {table}; returns how many were live.
CLEAR_TABLE = sql.SQL("""
WITH d AS (DELETE FROM {table} RETURNING expires_at)
SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now())
FROM d
""")
