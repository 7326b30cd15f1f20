-- kv values as JSON text, and the lock rows of cache.lock().
-- depends: 0002_cache

-- kv_cache.value_json: jsonb -> json. jsonb re-encodes numbers as numeric (1e16 comes back
-- as the integer 10000000000000000) and reorders keys; json keeps the text as written, so a
-- value round-trips exactly, and reading it costs no jsonb-to-text conversion on the server
-- (the client decodes the text with orjson). SQL can still inspect it (json_typeof, ->).
ALTER TABLE kv_cache ALTER COLUMN value_json TYPE json USING value_json::json;

-- cache.lock(name): one row per held lock. A holder is identified by a random owner token;
-- only that token releases or extends it, and an expired row is taken over by the next
-- acquirer in the same statement. Logged (not UNLOGGED): after a crash a lock that a live
-- holder still believes it holds must not vanish.
CREATE TABLE cache_locks (
    name        text        PRIMARY KEY CONSTRAINT cache_locks_name CHECK (length(name) BETWEEN 1 AND 200),
    owner       text        NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE cache_locks IS 'Distributed locks of cache.lock(): owner token and expiry per lock name.';
