-- Back to 0008's limits_windows (per-hit stamps and amounts); the rows are soft state and
-- are dropped.
TRUNCATE limits_windows;
ALTER TABLE limits_windows
    DROP COLUMN neg_stamps,
    DROP COLUMN totals,
    ADD COLUMN stamps  double precision[] NOT NULL,
    ADD COLUMN amounts bigint[]           NOT NULL,
    ADD CONSTRAINT limits_windows_same_length CHECK (cardinality(stamps) = cardinality(amounts));
COMMENT ON TABLE limits_windows IS 'limits moving windows: acquisitions (epoch seconds, amount) within the window (UNLOGGED).';
