-- limits_windows (the `limits` storage's moving window, 0008) keeps running totals instead of
-- per-hit amounts, so that a hit decides and prunes with array arithmetic alone: no unnest,
-- no aggregate, no sort (half the server time of 0008's statement, measured in bench/README.md).
-- depends: 0008_limits_storage
--
-- One element per admitted acquiring statement, newest first:
--   neg_stamps[i] = minus its server time (epoch seconds), so the array ascends and
--                   width_bucket(expiry - now, neg_stamps) counts the acquisitions still in
--                   the window (-stamp <= expiry - now, i.e. stamp >= now - expiry) by binary
--                   search; the window is the first n elements;
--   totals[i]     = the amount acquired up to and including acquisition i since the row began;
--                   totals has one element more: totals[n + 1] is the total before the oldest
--                   acquisition kept, so the amount in the window is totals[1] - totals[n + 1].
-- The rows are soft state (UNLOGGED): the table is emptied, as after a crash.
TRUNCATE limits_windows;
ALTER TABLE limits_windows
    DROP COLUMN stamps,
    DROP COLUMN amounts,
    ADD COLUMN neg_stamps double precision[] NOT NULL,
    ADD COLUMN totals     bigint[]           NOT NULL,
    ADD CONSTRAINT limits_windows_totals_length
        CHECK (cardinality(totals) = cardinality(neg_stamps) + 1);
COMMENT ON TABLE limits_windows IS 'limits moving windows: acquisitions within the window as minus their epoch seconds (newest first) and running totals (UNLOGGED).';
