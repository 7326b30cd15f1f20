-- L2 cache tables. UNLOGGED: no WAL on the hot write path; after a crash PostgreSQL empties
-- them, which a cache can afford (see DATABASE-ARCHITECTURE.md, "Durability").
-- Every key is hashed to a fixed-width bigint (key_hash, the primary key) and the full key
-- is stored beside it and compared on read, so a hash collision can never serve another
-- key's value (the Solid Cache design).
-- depends: 0001_core

CREATE UNLOGGED TABLE embedding_cache (
    key_hash    bigint      PRIMARY KEY,
    model       text        NOT NULL,
    text        text        NOT NULL,
    dimensions  integer     NOT NULL CONSTRAINT embedding_cache_dimensions CHECK (dimensions BETWEEN 1 AND 65536),
    -- float32 little-endian: 4 bytes per dimension, half of float8[] and no array header.
    embedding   bytea       NOT NULL,
    byte_size   integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT embedding_cache_embedding_size CHECK (octet_length(embedding) = 4 * dimensions)
)
-- Keep vectors up to ~2000 dimensions inline: float32 data does not compress, and an
-- out-of-line TOAST value costs a second index lookup on every hit.
WITH (toast_tuple_target = 8160);
COMMENT ON TABLE embedding_cache IS 'L2 cache: embedding vectors by (model, text); float32 bytes.';
-- Cleanup deletes in expiry order in small batches.
CREATE INDEX embedding_cache_expires_idx ON embedding_cache (expires_at);
-- set_embedding(s): "does the model have live vectors of another dimension?" is two range
-- probes (dimensions < d, dimensions > d) that find nothing in the usual case.
CREATE INDEX embedding_cache_model_dims_idx ON embedding_cache (model, dimensions);

CREATE UNLOGGED TABLE vector_search_cache (
    key_hash    bigint      PRIMARY KEY,
    index_name  text        NOT NULL,
    query       text        NOT NULL,
    params      jsonb       NOT NULL DEFAULT '{}',
    hits        jsonb       NOT NULL CONSTRAINT vector_search_cache_hits_array CHECK (jsonb_typeof(hits) = 'array'),
    byte_size   integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE vector_search_cache IS 'L2 cache: ranked vector-search hits by (index, query, params).';
CREATE INDEX vector_search_cache_expires_idx ON vector_search_cache (expires_at);

CREATE UNLOGGED TABLE llm_response_cache (
    key_hash    bigint      PRIMARY KEY,
    model       text        NOT NULL,
    prompt      text        NOT NULL,
    params      jsonb       NOT NULL DEFAULT '{}',
    response    text        NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}',
    -- Incremented in batches from in-process counters, never on the read path.
    hit_count   bigint      NOT NULL DEFAULT 0 CONSTRAINT llm_response_cache_hit_count CHECK (hit_count >= 0),
    last_hit_at timestamptz,
    byte_size   integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE llm_response_cache IS 'L2 cache: LLM responses by (model, prompt, generation params), with hit counts.';
CREATE INDEX llm_response_cache_expires_idx ON llm_response_cache (expires_at);

CREATE UNLOGGED TABLE kv_cache (
    key_hash    bigint      PRIMARY KEY,
    namespace   text        NOT NULL,
    key         text        NOT NULL,
    -- Exactly one of: a JSON value, or raw bytes.
    value_json  jsonb,
    value_bytes bytea,
    tags        text[]      NOT NULL DEFAULT '{}',
    byte_size   integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    CONSTRAINT kv_cache_one_value CHECK ((value_json IS NULL) <> (value_bytes IS NULL))
);
COMMENT ON TABLE kv_cache IS 'Generic TTL key/value cache by (namespace, key); JSON or bytes; optional tags.';
CREATE INDEX kv_cache_expires_idx ON kv_cache (expires_at) WHERE expires_at IS NOT NULL;
-- invalidate_tags(): find entries carrying any of the given tags.
CREATE INDEX kv_cache_tags_idx ON kv_cache USING gin (tags) WHERE tags <> '{}';
-- delete_prefix()/clear(): the namespace plus the first 256 characters of the key (a full
-- key may be far longer than a btree entry can hold).
CREATE INDEX kv_cache_namespace_prefix_idx ON kv_cache (namespace, left(key, 256) text_pattern_ops);

-- Hit/miss counters per cache, flushed in batches from the processes' in-memory counters.
CREATE TABLE cache_stats (
    cache_name  text        PRIMARY KEY,
    hits        bigint      NOT NULL DEFAULT 0,
    misses      bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cache_stats IS 'Aggregated cache hit/miss counters (flushed by processes in batches).';
