"""SQL of the near cache (SPEC §2.10; triggers in migrations/0010_near_cache.sql).

The near cache reads with the L2 statements of ``digitwin_db.sql.cache`` (their last
column, ``ttl_left``, bounds a copy's life); here are its counters and its subscription.
"""

from __future__ import annotations

from typing import LiteralString

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
