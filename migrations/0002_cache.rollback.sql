DROP TABLE IF EXISTS cache_stats;
DROP TABLE IF EXISTS kv_cache;
DROP TABLE IF EXISTS llm_response_cache;
DROP TABLE IF EXISTS vector_search_cache;
DROP TABLE IF EXISTS embedding_cache;
