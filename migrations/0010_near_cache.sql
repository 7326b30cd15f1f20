-- Near cache coherence: every statement that changes a cache table sends
-- NOTIFY digitwin_cache with the key hashes it touched, so each process drops its
-- in-memory copies (src/digitwin_db/near_cache.py; DATABASE-ARCHITECTURE.md, "Near cache").
-- Statement-level AFTER triggers with transition tables: one notification per statement and
-- table, whatever wrote it (this package, another language, plain SQL, cleanup, eviction).
-- UPDATE, DELETE and TRUNCATE notify; INSERT does not need to: a copy exists only of a live
-- row, every removal of a live row notifies, and a copy never outlives its row's expires_at
-- (its deadline is computed from the server's clock), so no copy can exist of a key that has
-- no row to conflict with. An upsert that replaces a row is an UPDATE and notifies.
-- Payload (< 8000 bytes, PostgreSQL's limit): '<code>:<hex>,<hex>,…' with code e(mbedding),
-- s(earch), l(lm), k(v) and the 64-bit key_hash in hex (two's complement); a statement with
-- more keys than fit sends '<code>*' (drop the cache) or 'k*<namespace>' (one namespace).
-- The triggers are ENABLE ALWAYS: they fire under session_replication_role = replica too
-- (logical replication apply), so a replicated write invalidates like any other.
-- Also: near-cache counters in cache_stats, flushed with the hit/miss counters.
-- depends: 0002_cache

ALTER TABLE cache_stats
    ADD COLUMN near_hits          bigint NOT NULL DEFAULT 0,
    ADD COLUMN near_misses        bigint NOT NULL DEFAULT 0,
    ADD COLUMN near_invalidations bigint NOT NULL DEFAULT 0,
    ADD COLUMN near_evictions     bigint NOT NULL DEFAULT 0;

-- Keys per notification: 460 × 17 bytes (at most 16 hex digits and a comma each) plus the
-- prefix stays under 8000 bytes.
CREATE FUNCTION cache_near_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    code      text := TG_ARGV[0];
    max_keys  constant integer := 460;
    n         integer;
    hashes    text;
    low       text;
    high      text;
    -- pg_notify() is called in assignments, not PERFORM: PL/pgSQL evaluates a simple
    -- expression without a full SPI query (this runs on every write).
    sent      text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        sent := pg_notify('digitwin_cache', code || '*');
        RETURN NULL;
    END IF;
    -- PL/pgSQL compiles a trigger function once per trigger, so each branch below is only
    -- planned for the tables and events that reach it.
    IF TG_OP = 'DELETE' THEN
        -- An expired row has no live copy anywhere (copies never outlive expires_at), so
        -- the cleanup job's deletes of expired rows notify nothing.
        SELECT count(*), string_agg(to_hex(key_hash), ',') INTO n, hashes
        FROM (SELECT key_hash FROM old_rows WHERE expires_at IS NULL OR expires_at > now()
              LIMIT max_keys + 1) k;
    ELSIF TG_TABLE_NAME = 'llm_response_cache' THEN
        -- Hit-count flushes (only hit_count / last_hit_at change) leave copies valid.
        SELECT count(*), string_agg(to_hex(key_hash), ',') INTO n, hashes
        FROM (SELECT DISTINCT key_hash FROM (
                (SELECT key_hash, model, prompt, params, response, metadata, created_at, expires_at FROM new_rows
                 EXCEPT ALL
                 SELECT key_hash, model, prompt, params, response, metadata, created_at, expires_at FROM old_rows)
                UNION ALL
                (SELECT key_hash, model, prompt, params, response, metadata, created_at, expires_at FROM old_rows
                 EXCEPT ALL
                 SELECT key_hash, model, prompt, params, response, metadata, created_at, expires_at FROM new_rows)
              ) c LIMIT max_keys + 1) k;
    ELSE
        -- The old hashes suffice: a row moved to a new key_hash (plain SQL) lands on a hash
        -- that had no row, hence no copy.
        SELECT count(*), string_agg(to_hex(key_hash), ',') INTO n, hashes
        FROM (SELECT key_hash FROM old_rows LIMIT max_keys + 1) k;
    END IF;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    IF n <= max_keys THEN
        sent := pg_notify('digitwin_cache', code || ':' || hashes);
        RETURN NULL;
    END IF;
    -- Too many keys for one payload: drop the namespace when the statement stayed in one,
    -- else the whole cache.
    IF TG_TABLE_NAME = 'kv_cache' THEN
        SELECT min(namespace), max(namespace) INTO low, high FROM old_rows;
        IF low = high AND octet_length(low) < 7900 THEN
            sent := pg_notify('digitwin_cache', 'k*' || low);
            RETURN NULL;
        END IF;
    END IF;
    sent := pg_notify('digitwin_cache', code || '*');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION cache_near_notify() IS
    'NOTIFY digitwin_cache with the key hashes a statement changed (near cache coherence).';

CREATE TRIGGER embedding_cache_near_update AFTER UPDATE ON embedding_cache
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('e');
CREATE TRIGGER embedding_cache_near_delete AFTER DELETE ON embedding_cache
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('e');
CREATE TRIGGER embedding_cache_near_truncate AFTER TRUNCATE ON embedding_cache
    FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('e');

CREATE TRIGGER vector_search_cache_near_update AFTER UPDATE ON vector_search_cache
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('s');
CREATE TRIGGER vector_search_cache_near_delete AFTER DELETE ON vector_search_cache
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('s');
CREATE TRIGGER vector_search_cache_near_truncate AFTER TRUNCATE ON vector_search_cache
    FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('s');

CREATE TRIGGER llm_response_cache_near_update AFTER UPDATE ON llm_response_cache
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('l');
CREATE TRIGGER llm_response_cache_near_delete AFTER DELETE ON llm_response_cache
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('l');
CREATE TRIGGER llm_response_cache_near_truncate AFTER TRUNCATE ON llm_response_cache
    FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('l');

CREATE TRIGGER kv_cache_near_update AFTER UPDATE ON kv_cache
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('k');
CREATE TRIGGER kv_cache_near_delete AFTER DELETE ON kv_cache
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('k');
CREATE TRIGGER kv_cache_near_truncate AFTER TRUNCATE ON kv_cache
    FOR EACH STATEMENT EXECUTE FUNCTION cache_near_notify('k');

ALTER TABLE embedding_cache ENABLE ALWAYS TRIGGER embedding_cache_near_update;
ALTER TABLE embedding_cache ENABLE ALWAYS TRIGGER embedding_cache_near_delete;
ALTER TABLE embedding_cache ENABLE ALWAYS TRIGGER embedding_cache_near_truncate;
ALTER TABLE vector_search_cache ENABLE ALWAYS TRIGGER vector_search_cache_near_update;
ALTER TABLE vector_search_cache ENABLE ALWAYS TRIGGER vector_search_cache_near_delete;
ALTER TABLE vector_search_cache ENABLE ALWAYS TRIGGER vector_search_cache_near_truncate;
ALTER TABLE llm_response_cache ENABLE ALWAYS TRIGGER llm_response_cache_near_update;
ALTER TABLE llm_response_cache ENABLE ALWAYS TRIGGER llm_response_cache_near_delete;
ALTER TABLE llm_response_cache ENABLE ALWAYS TRIGGER llm_response_cache_near_truncate;
ALTER TABLE kv_cache ENABLE ALWAYS TRIGGER kv_cache_near_update;
ALTER TABLE kv_cache ENABLE ALWAYS TRIGGER kv_cache_near_delete;
ALTER TABLE kv_cache ENABLE ALWAYS TRIGGER kv_cache_near_truncate;
