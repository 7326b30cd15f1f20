-- Token buckets, one row per (subject, endpoint).
-- depends: 0001_core

-- UNLOGGED: a bucket is soft state, rebuilt on demand. Writing no WAL keeps a check to one
-- in-memory row update, and the commit of a transaction that wrote no WAL does not wait for
-- a WAL flush. The price: after a crash (not a clean restart) PostgreSQL empties the table,
-- so every bucket starts full again and the usage counters restart; standbys do not have
-- the table's contents. See DATABASE-ARCHITECTURE.md, "Durability per table".
--
-- fillfactor 70 leaves room on each page so that the update of a bucket can be a HOT
-- update (no index write); for the same reason no column that changes on every check is
-- indexed (the cleanup of idle buckets walks the heap in block ranges instead).
CREATE UNLOGGED TABLE rate_limits (
    -- The subject's UUID in canonical text form (the library validates and normalises it).
    user_id       text             NOT NULL CONSTRAINT rate_limits_user_id_length CHECK (length(user_id) BETWEEN 1 AND 200),
    endpoint      text             NOT NULL CONSTRAINT rate_limits_endpoint_length CHECK (length(endpoint) BETWEEN 1 AND 500),
    capacity      double precision NOT NULL CONSTRAINT rate_limits_capacity CHECK (capacity > 0 AND capacity < 'Infinity'),
    refill_rate   double precision NOT NULL CONSTRAINT rate_limits_refill_rate CHECK (refill_rate > 0 AND refill_rate < 'Infinity'),
    tokens        double precision NOT NULL CONSTRAINT rate_limits_tokens CHECK (tokens >= 0 AND tokens <= capacity),
    -- Server time up to which the refill has been added to tokens; never moves backwards.
    refilled_at   timestamptz      NOT NULL DEFAULT now(),
    allowed_count bigint           NOT NULL DEFAULT 0 CONSTRAINT rate_limits_allowed_count CHECK (allowed_count >= 0),
    denied_count  bigint           NOT NULL DEFAULT 0 CONSTRAINT rate_limits_denied_count CHECK (denied_count >= 0),
    -- Outcome of the latest check: lets the single upsert statement report a denial in
    -- its one RETURNING row (RETURNING only sees the new row).
    last_allowed  boolean          NOT NULL DEFAULT true,
    created_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, endpoint)
) WITH (fillfactor = 70);
COMMENT ON TABLE rate_limits IS 'Token buckets per (user, endpoint), refilled continuously by server time (UNLOGGED: soft state).';
COMMENT ON COLUMN rate_limits.tokens IS 'Tokens available at refilled_at (fractional; capped at capacity).';
COMMENT ON COLUMN rate_limits.allowed_count IS 'Checks admitted since the bucket was created (or last reset).';
COMMENT ON COLUMN rate_limits.denied_count IS 'Checks denied since the bucket was created (or last reset).';
