"""SQL of the ``limits`` storage (``digitwin_db.contrib.limits``): tables ``limits_counters``
(fixed window), ``limits_windows`` (moving window) and ``limits_sliding`` (sliding-window
counter), created by migration 0008 (``limits_windows`` as 0014 left it).

Every decision is ONE statement: an ``INSERT … ON CONFLICT DO UPDATE`` whose row lock
serializes concurrent callers on a key, so N callers on a limit of C get exactly C
admissions. A denied acquisition writes nothing: the ``DO UPDATE … WHERE`` condition is false,
no row is returned, and the row only stays locked until the statement ends. Times are the
server's ``statement_timestamp()`` (one value per statement, whatever the lock waits), as
epoch seconds in ``float8`` where ``limits`` wants floats. Numbers are bound with explicit
casts so that each statement has one prepared plan whatever the Python types.
"""

from __future__ import annotations

from typing import LiteralString

#: The storage's tables (migration 0008). Their rows expire and are rewritten all day long, so
#: they are among the maintenance churn tables (``_async/maintenance.py`` CHURN_TABLES).
TABLES: tuple[str, ...] = ("limits_counters", "limits_windows", "limits_sliding")

# ---------------------------------------------------------------- fixed window

# incr: add `amount` to the key's counter; a missing or expired counter restarts at `amount`
# with a window of `expiry` seconds from now. Returns the new count.
INCR: LiteralString = """
INSERT INTO limits_counters AS c (key, count, expires_at)
VALUES (%(key)s, %(amount)s::bigint,
        statement_timestamp() + make_interval(secs => %(expiry)s::float8))
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN c.expires_at > statement_timestamp()
                 THEN c.count + EXCLUDED.count ELSE EXCLUDED.count END,
    expires_at = CASE WHEN c.expires_at > statement_timestamp()
                      THEN c.expires_at ELSE EXCLUDED.expires_at END
RETURNING count
"""

# get: the key's live count (no row when missing or expired).
GET: LiteralString = """
SELECT count FROM limits_counters WHERE key = %(key)s AND expires_at > statement_timestamp()
"""

# get-expiry: when the key's window ends (epoch seconds); now when there is no live window.
GET_EXPIRY: LiteralString = """
SELECT extract(epoch FROM coalesce(
    (SELECT expires_at FROM limits_counters
      WHERE key = %(key)s AND expires_at > statement_timestamp()),
    statement_timestamp()))::float8
"""

# ---------------------------------------------------------------- moving window

# The moving window's row (migration 0014): neg_stamps = minus the server time of each
# admitted acquisition, newest first (so the array ascends), and totals = running totals of
# the amounts (totals[i] up to and including acquisition i; one element more, the total before
# the oldest kept). n = width_bucket(expiry - now, neg_stamps) is, by binary search, the
# number of acquisitions still in the window (stamp >= now - expiry: one exactly `expiry`
# seconds old still counts, as in limits' own storages); they are the first n, and they
# amount to totals[1] - totals[n + 1]. No unnest, no aggregate, no sort.

# acquire-entry: admit `amount` if the amounts acquired in the last `expiry` seconds plus
# `amount` stay within `limit`. When admitted, the row keeps the acquisitions still in the
# window plus this one (prepended). It is stamped greatest(now, newest stamp): a statement
# that got the row lock after a later-started one is recorded at that one's time (later by at
# most its lock wait, so it is never counted for less time than it should), which keeps the
# array ordered. Running totals restart from 0 when the total before the window passes 2^62,
# far from bigint's end (each admitted amount and the window's amount are <= 10^15); that
# rare step unnests the kept totals once. One row (true) when admitted, none when denied.
ACQUIRE_ENTRY: LiteralString = """
INSERT INTO limits_windows AS w (key, neg_stamps, totals, expires_at)
VALUES (%(key)s, ARRAY[-extract(epoch FROM statement_timestamp())::float8],
        ARRAY[%(amount)s::bigint, 0::bigint],
        statement_timestamp() + make_interval(secs => %(expiry)s::float8))
ON CONFLICT (key) DO UPDATE SET
    (neg_stamps, totals) = (
        SELECT least(EXCLUDED.neg_stamps[1], w.neg_stamps[1]) || w.neg_stamps[1:k.n],
               CASE WHEN w.totals[k.n + 1] < 4611686018427387904
                    THEN (w.totals[1] + EXCLUDED.totals[1]) || w.totals[1:k.n + 1]
                    ELSE (SELECT (w.totals[1] - w.totals[k.n + 1] + EXCLUDED.totals[1])
                                 || array_agg(u.total - w.totals[k.n + 1] ORDER BY u.ord)
                            FROM unnest(w.totals[1:k.n + 1]) WITH ORDINALITY AS u(total, ord))
               END
          FROM (SELECT width_bucket(%(expiry)s::float8 + EXCLUDED.neg_stamps[1], w.neg_stamps)
                       AS n) AS k),
    expires_at = EXCLUDED.expires_at
WHERE w.totals[1]
      - w.totals[width_bucket(%(expiry)s::float8 + EXCLUDED.neg_stamps[1], w.neg_stamps) + 1]
      + %(amount)s::bigint <= %(limit)s::bigint
RETURNING true
"""

# moving-window: (oldest acquisition still in the window, amounts acquired in the window);
# (now, 0) for an empty window. Always one row.
GET_MOVING_WINDOW: LiteralString = """
SELECT coalesce(-w.neg_stamps[k.n], t.now),
       coalesce(w.totals[1] - w.totals[k.n + 1], 0)
  FROM (SELECT extract(epoch FROM statement_timestamp())::float8 AS now) AS t
  LEFT JOIN limits_windows AS w ON w.key = %(key)s
  LEFT JOIN LATERAL (SELECT width_bucket(%(expiry)s::float8 - t.now, w.neg_stamps) AS n) AS k
         ON true
"""

# ---------------------------------------------------------------- sliding-window counter

# acquire-sliding-window-entry: windows are aligned on multiples of `expiry` seconds of the
# server's epoch. The stored row is first moved to the current window (current count becomes
# the previous one after one window; both drop to 0 after two), then the hit is admitted if
#     floor(previous * (time left in the current window / expiry)) + current + amount <= limit
# which is limits' weighted count. `window_no` never moves backwards: a statement that
# obtained the lock after a later one uses the later window. One row (true) when admitted.
ACQUIRE_SLIDING: LiteralString = """
INSERT INTO limits_sliding AS s
       (key, window_no, previous_count, current_count, touched_at, expires_at)
SELECT %(key)s, floor(t.now / %(expiry)s::float8)::bigint, 0, %(amount)s::bigint, t.now,
       statement_timestamp() + make_interval(secs => 2 * %(expiry)s::float8)
  FROM (SELECT extract(epoch FROM statement_timestamp())::float8 AS now) AS t
ON CONFLICT (key) DO UPDATE SET
    (window_no, previous_count, current_count, touched_at, expires_at) = (
        SELECT m.window_no, m.previous, m.current + EXCLUDED.current_count,
               EXCLUDED.touched_at, EXCLUDED.expires_at
          FROM (SELECT greatest(s.window_no, EXCLUDED.window_no) AS window_no,
                       CASE greatest(s.window_no, EXCLUDED.window_no) - s.window_no
                            WHEN 0 THEN s.previous_count WHEN 1 THEN s.current_count
                            ELSE 0 END AS previous,
                       CASE WHEN s.window_no >= EXCLUDED.window_no
                            THEN s.current_count ELSE 0 END AS current) AS m)
WHERE (SELECT floor(m.previous * greatest(0.0, least(1.0,
                  1.0 - (EXCLUDED.touched_at / %(expiry)s::float8 - m.window_no))))
              + m.current + EXCLUDED.current_count
         FROM (SELECT greatest(s.window_no, EXCLUDED.window_no) AS window_no,
                      CASE greatest(s.window_no, EXCLUDED.window_no) - s.window_no
                           WHEN 0 THEN s.previous_count WHEN 1 THEN s.current_count
                           ELSE 0 END AS previous,
                      CASE WHEN s.window_no >= EXCLUDED.window_no
                           THEN s.current_count ELSE 0 END AS current) AS m)
      <= %(limit)s::bigint
RETURNING true
"""

# sliding-window: the stored row (window_no, previous_count, current_count; NULLs when
# missing) and the server's time; contrib.limits_rules.sliding_window() does the arithmetic.
GET_SLIDING_WINDOW: LiteralString = """
SELECT s.window_no, s.previous_count, s.current_count,
       extract(epoch FROM statement_timestamp())::float8
  FROM (SELECT 1) AS one
  LEFT JOIN limits_sliding AS s ON s.key = %(key)s
"""

# clear-sliding-window: forget the key's sliding-window counts.
CLEAR_SLIDING: LiteralString = """
DELETE FROM limits_sliding WHERE key = %(key)s
"""

# ---------------------------------------------------------------- maintenance

# clear: forget the key in every strategy's table.
CLEAR: LiteralString = """
WITH counters AS (DELETE FROM limits_counters WHERE key = %(key)s),
     windows AS (DELETE FROM limits_windows WHERE key = %(key)s)
DELETE FROM limits_sliding WHERE key = %(key)s
"""

# reset: empty the three tables; returns how many keys were removed.
RESET: LiteralString = """
WITH counters AS (DELETE FROM limits_counters RETURNING 1),
     windows AS (DELETE FROM limits_windows RETURNING 1),
     sliding AS (DELETE FROM limits_sliding RETURNING 1)
SELECT (SELECT count(*) FROM counters) + (SELECT count(*) FROM windows)
       + (SELECT count(*) FROM sliding)
"""

# check: the server answers.
CHECK: LiteralString = "SELECT 1"

# cleanup-expired: delete up to `batch` expired rows of each table, skipping rows a hit holds
# (a hit on an expired row restarts it anyway). Returns the number deleted.
DELETE_EXPIRED: LiteralString = """
WITH counters AS (
    DELETE FROM limits_counters WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM limits_counters WHERE expires_at < statement_timestamp()
         LIMIT %(batch)s FOR UPDATE SKIP LOCKED))
    RETURNING 1),
windows AS (
    DELETE FROM limits_windows WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM limits_windows WHERE expires_at < statement_timestamp()
         LIMIT %(batch)s FOR UPDATE SKIP LOCKED))
    RETURNING 1),
sliding AS (
    DELETE FROM limits_sliding WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM limits_sliding WHERE expires_at < statement_timestamp()
         LIMIT %(batch)s FOR UPDATE SKIP LOCKED))
    RETURNING 1)
SELECT (SELECT count(*) FROM counters) + (SELECT count(*) FROM windows)
       + (SELECT count(*) FROM sliding)
"""
