-- Tables of the `limits` storage (digitwin_db.contrib.limits: the postgresql:// and
-- async+postgresql:// schemes of limits, Flask-Limiter and slowapi). One table per strategy.
-- depends: 0003_rate_limits

-- UNLOGGED for the reason given in 0003_rate_limits: a rate-limit window is soft state; after
-- a crash (not a clean restart) PostgreSQL empties these tables and every window starts
-- empty. fillfactor 70 leaves room for HOT updates, so no column that changes on every hit is
-- indexed; the cleanup of expired rows walks the heap (it is rare and batched).
--
-- Keys are limits' own keys ("LIMITER/<identifiers>/<amount>/<multiples>/<granularity>");
-- the library refuses longer keys before any SQL (contrib.limits_rules.MAX_KEY_LENGTH).
-- Every time is the server's: statement_timestamp() of the statement that decided.

-- Fixed window: one counter per key, restarted when its window has expired.
CREATE UNLOGGED TABLE limits_counters (
    key        text        PRIMARY KEY CONSTRAINT limits_counters_key_length CHECK (length(key) BETWEEN 1 AND 1024),
    count      bigint      NOT NULL CONSTRAINT limits_counters_count CHECK (count >= 0),
    expires_at timestamptz NOT NULL
) WITH (fillfactor = 70);
COMMENT ON TABLE limits_counters IS 'limits fixed-window counters (UNLOGGED: soft state).';

-- Moving window: the acquisitions of the last `expiry` seconds as two parallel arrays, one
-- element per acquiring statement (server time, amount), so a hit of cost 1,000,000 is one
-- element, not a million. Elements older than the window are dropped by the next hit.
CREATE UNLOGGED TABLE limits_windows (
    key        text               PRIMARY KEY CONSTRAINT limits_windows_key_length CHECK (length(key) BETWEEN 1 AND 1024),
    stamps     double precision[] NOT NULL,
    amounts    bigint[]           NOT NULL,
    -- When the newest acquisition leaves the window: the row then counts nothing.
    expires_at timestamptz        NOT NULL,
    CONSTRAINT limits_windows_same_length CHECK (cardinality(stamps) = cardinality(amounts))
) WITH (fillfactor = 70);
COMMENT ON TABLE limits_windows IS 'limits moving windows: acquisitions (epoch seconds, amount) within the window (UNLOGGED).';

-- Sliding-window counter: the counts of the current and the previous window of one key in
-- one row, windows aligned on multiples of `expiry` seconds of the server's epoch.
CREATE UNLOGGED TABLE limits_sliding (
    key            text             PRIMARY KEY CONSTRAINT limits_sliding_key_length CHECK (length(key) BETWEEN 1 AND 1024),
    -- floor(epoch / expiry) of the window that current_count belongs to.
    window_no      bigint           NOT NULL,
    previous_count bigint           NOT NULL CONSTRAINT limits_sliding_previous CHECK (previous_count >= 0),
    current_count  bigint           NOT NULL CONSTRAINT limits_sliding_current CHECK (current_count >= 0),
    -- Server time (epoch seconds) of the latest admitted hit.
    touched_at     double precision NOT NULL,
    -- Two windows after the latest hit: both counts are then out of reach.
    expires_at     timestamptz      NOT NULL
) WITH (fillfactor = 70);
COMMENT ON TABLE limits_sliding IS 'limits sliding-window counters: current and previous window per key (UNLOGGED).';
