-- Token buckets, one row per (subject, endpoint).
-- depends: 0001_core

-- fillfactor 70 leaves room on each page so that the update of a bucket can be a HOT
-- update (no index write); for the same reason no column that changes on every check is
-- indexed.
CREATE TABLE rate_limits (
    user_id       text             NOT NULL CONSTRAINT rate_limits_user_id_length CHECK (length(user_id) BETWEEN 1 AND 200),
    endpoint      text             NOT NULL CONSTRAINT rate_limits_endpoint_length CHECK (length(endpoint) BETWEEN 1 AND 500),
    capacity      double precision NOT NULL CONSTRAINT rate_limits_capacity CHECK (capacity > 0 AND capacity < 'Infinity'),
    refill_rate   double precision NOT NULL CONSTRAINT rate_limits_refill_rate CHECK (refill_rate > 0 AND refill_rate < 'Infinity'),
    tokens        double precision NOT NULL CONSTRAINT rate_limits_tokens CHECK (tokens >= 0 AND tokens <= capacity),
    -- Server time of the last refill computation.
    refilled_at   timestamptz      NOT NULL DEFAULT clock_timestamp(),
    allowed_count bigint           NOT NULL DEFAULT 0,
    denied_count  bigint           NOT NULL DEFAULT 0,
    created_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, endpoint)
) WITH (fillfactor = 70);
COMMENT ON TABLE rate_limits IS 'Token buckets per (user, endpoint), refilled continuously by server time.';
