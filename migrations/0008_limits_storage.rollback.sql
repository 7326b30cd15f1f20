DROP TABLE IF EXISTS limits_sliding;
DROP TABLE IF EXISTS limits_windows;
DROP TABLE IF EXISTS limits_counters;
