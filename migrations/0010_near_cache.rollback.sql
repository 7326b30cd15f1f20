DROP TRIGGER IF EXISTS embedding_cache_near_update ON embedding_cache;
DROP TRIGGER IF EXISTS embedding_cache_near_delete ON embedding_cache;
DROP TRIGGER IF EXISTS embedding_cache_near_truncate ON embedding_cache;
DROP TRIGGER IF EXISTS vector_search_cache_near_update ON vector_search_cache;
DROP TRIGGER IF EXISTS vector_search_cache_near_delete ON vector_search_cache;
DROP TRIGGER IF EXISTS vector_search_cache_near_truncate ON vector_search_cache;
DROP TRIGGER IF EXISTS llm_response_cache_near_update ON llm_response_cache;
DROP TRIGGER IF EXISTS llm_response_cache_near_delete ON llm_response_cache;
DROP TRIGGER IF EXISTS llm_response_cache_near_truncate ON llm_response_cache;
DROP TRIGGER IF EXISTS kv_cache_near_update ON kv_cache;
DROP TRIGGER IF EXISTS kv_cache_near_delete ON kv_cache;
DROP TRIGGER IF EXISTS kv_cache_near_truncate ON kv_cache;
DROP FUNCTION IF EXISTS cache_near_notify();
ALTER TABLE cache_stats
    DROP COLUMN IF EXISTS near_hits,
    DROP COLUMN IF EXISTS near_misses,
    DROP COLUMN IF EXISTS near_invalidations,
    DROP COLUMN IF EXISTS near_evictions;
