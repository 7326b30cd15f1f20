"""SQL of the near cache (SPEC §2.10; triggers in migrations/0010_near_cache.sql).

The reads are those of ``digitwin_db.sql.cache`` plus ``ttl_left``, the seconds the row
has left by the server's clock (NULL: no expiry): a copy kept in memory must die no later
than its row, whatever the clock of the host that keeps it. They run only when the near
cache is on (and the lookup missed in memory), so the L2 statements stay as they are.
"""

from __future__ import annotations

from typing import LiteralString

# One live kv value with its time left (NULL: no expiry).
KV_GET: LiteralString = """
SELECT value_json::text, value_bytes, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM kv_cache
WHERE key_hash = %(key_hash)s AND namespace = %(namespace)s AND key = %(key)s
    AND (expires_at IS NULL OR expires_at > now())
"""

# Live kv values of many keys of one namespace, with their time left; the caller keeps the
# rows whose full key it asked for.
KV_GET_MANY: LiteralString = """
SELECT key, value_json::text, value_bytes, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM kv_cache
WHERE key_hash = ANY (%(key_hashes)s::bigint[]) AND namespace = %(namespace)s
    AND (expires_at IS NULL OR expires_at > now())
"""

# One live embedding (float32 bytes) with its time left.
EMBEDDING_GET: LiteralString = """
SELECT embedding, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM embedding_cache
WHERE key_hash = %(key_hash)s AND model = %(model)s AND text = %(text)s AND expires_at > now()
"""

# Live embeddings of many texts of one model, with their time left.
EMBEDDING_GET_MANY: LiteralString = """
SELECT text, embedding, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM embedding_cache
WHERE key_hash = ANY (%(key_hashes)s::bigint[]) AND model = %(model)s AND expires_at > now()
"""

# One live LLM response (as sql.cache.LLM_GET) with its time left.
LLM_GET: LiteralString = """
SELECT response, metadata, hit_count, created_at, expires_at,
    EXTRACT(EPOCH FROM expires_at - now())::float8
FROM llm_response_cache
WHERE key_hash = %(key_hash)s AND model = %(model)s AND prompt = %(prompt)s
    AND params = %(params)s::jsonb AND expires_at > now()
"""

# Live ranked hits of one search, with their time left.
SEARCH_GET: LiteralString = """
SELECT hits, EXTRACT(EPOCH FROM expires_at - now())::float8
FROM vector_search_cache
WHERE key_hash = %(key_hash)s AND index_name = %(index_name)s AND query = %(query)s
    AND params = %(params)s::jsonb AND expires_at > now()
"""

# Add this process's near-cache counters to cache_stats (one row per cache). Near hits the
# process did not count as hits already (add_hits) are hits of the cache too.
FLUSH_COUNTS: LiteralString = """
INSERT INTO cache_stats AS s (cache_name, hits, near_hits, near_misses, near_invalidations,
    near_evictions, updated_at)
SELECT n.cache_name, n.add_hits, n.hits, n.misses, n.invalidations, n.evictions, now()
FROM unnest(%(names)s::text[], %(add_hits)s::bigint[], %(hits)s::bigint[],
    %(misses)s::bigint[], %(invalidations)s::bigint[], %(evictions)s::bigint[])
    AS n(cache_name, add_hits, hits, misses, invalidations, evictions)
ON CONFLICT (cache_name) DO UPDATE
SET hits = s.hits + EXCLUDED.hits,
    near_hits = s.near_hits + EXCLUDED.near_hits,
    near_misses = s.near_misses + EXCLUDED.near_misses,
    near_invalidations = s.near_invalidations + EXCLUDED.near_invalidations,
    near_evictions = s.near_evictions + EXCLUDED.near_evictions,
    updated_at = now()
"""

# Flushed near-cache counters of every cache (all processes).
COUNTS: LiteralString = """
SELECT cache_name, near_hits, near_misses, near_invalidations, near_evictions
FROM cache_stats
"""

# The listener's subscription (channel near_cache.CHANNEL, the triggers' pg_notify target).
LISTEN: LiteralString = "LISTEN digitwin_cache"
