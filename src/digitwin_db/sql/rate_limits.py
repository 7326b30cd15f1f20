"""SQL of the rate limiter (table ``rate_limits``): every statement that touches it.

Token-bucket arithmetic, shared by the statements below:

* ``avail = least(capacity, tokens + greatest(0, now() - refilled_at) * refill_rate)`` —
  the bucket refilled up to the statement's time. ``now()`` is the server's clock and, in
  the autocommit mode the library uses, the start time of the one-statement transaction.
  A caller that started earlier may obtain the row lock after a caller that started later
  has moved ``refilled_at`` past its ``now()``: the negative elapsed time is clamped to 0
  and ``refilled_at`` never moves backwards, so no token is ever created twice.
* ``lag = refilled_at - now()`` (≥ 0) is returned so that ``retry_after`` counts from the
  caller's own statement time and is never earlier than the moment tokens exist.

Numbers are bound as ``float8`` (the library passes Python floats) so each statement has
one prepared plan whatever the values.
"""

from __future__ import annotations

from typing import LiteralString

# check-and-consume: refill the bucket, take `cost` tokens if there are enough, count the
# outcome — one atomic statement, one round trip, always exactly one row. A new bucket is
# created full and pays `cost` at once (cost <= capacity is checked before). On a denial
# the row is still updated (refill persisted, tokens not consumed, denied_count + 1) so
# the RETURNING row exists and reports `last_allowed = false`. A changed capacity or rate
# is adopted, tokens clamped to the new capacity. The sub-SELECT computes the refill once.
CHECK_AND_CONSUME: LiteralString = """
INSERT INTO rate_limits AS b
       (user_id, endpoint, capacity, refill_rate, tokens, refilled_at, allowed_count, last_allowed)
VALUES (%(user_id)s, %(endpoint)s, %(capacity)s, %(refill_rate)s, %(capacity)s - %(cost)s,
        now(), 1, true)
ON CONFLICT (user_id, endpoint) DO UPDATE SET
    (capacity, refill_rate, tokens, refilled_at, allowed_count, denied_count, last_allowed) = (
        SELECT EXCLUDED.capacity, EXCLUDED.refill_rate,
               CASE WHEN s.ok THEN s.avail - %(cost)s ELSE s.avail END,
               s.at,
               b.allowed_count + s.ok::int,
               b.denied_count + (NOT s.ok)::int,
               s.ok
          FROM (SELECT r.avail, r.at, r.avail >= %(cost)s AS ok
                  FROM (SELECT least(EXCLUDED.capacity,
                                     b.tokens
                                     + greatest(0, date_part('epoch', now() - b.refilled_at))
                                       * EXCLUDED.refill_rate) AS avail,
                               greatest(b.refilled_at, now()) AS at) AS r) AS s)
RETURNING b.last_allowed, b.tokens, date_part('epoch', b.refilled_at - now())
"""

# peek: the bucket's tokens now under the given capacity/rate, without writing; a bucket
# that does not exist is full. Always one row.
PEEK: LiteralString = """
SELECT coalesce(least(%(capacity)s,
                      b.tokens + greatest(0, date_part('epoch', now() - b.refilled_at))
                                 * %(refill_rate)s),
                %(capacity)s),
       coalesce(greatest(0, date_part('epoch', b.refilled_at - now())), 0)
  FROM (VALUES (1)) AS one(x)
  LEFT JOIN rate_limits AS b ON b.user_id = %(user_id)s AND b.endpoint = %(endpoint)s
"""

# check-many, step 1 (only when step 2 reported a missing bucket): create the missing
# buckets full. A full bucket behaves exactly like an absent one, so this changes no
# decision; rows are inserted in endpoint order, like step 2 locks them.
CREATE_MISSING_BUCKETS: LiteralString = """
INSERT INTO rate_limits (user_id, endpoint, capacity, refill_rate, tokens)
SELECT %(user_id)s, r.endpoint, r.capacity, r.refill_rate, r.capacity
  FROM unnest(%(endpoints)s::text[], %(capacities)s::float8[], %(refill_rates)s::float8[])
       AS r(endpoint, capacity, refill_rate)
 ORDER BY r.endpoint
ON CONFLICT (user_id, endpoint) DO NOTHING
"""

# check-many, step 2: all-or-nothing over several buckets of one user, in one statement.
# `locked` takes the row locks in endpoint order (ORDER BY runs before FOR UPDATE), so two
# callers naming overlapping buckets in any order queue behind each other instead of
# deadlocking; it sees each row's latest committed version once locked. `decision` says
# whether every bucket exists (`complete`) and has enough tokens (`ok`). `consumed`
# takes the cost from every bucket, or from none (refill persisted, denied_count + 1).
# When a bucket is missing nothing is written and the caller runs step 1 then retries.
CHECK_MANY: LiteralString = """
WITH req AS (
    SELECT r.endpoint, r.capacity, r.refill_rate, r.cost
      FROM unnest(%(endpoints)s::text[], %(capacities)s::float8[], %(refill_rates)s::float8[],
                  %(costs)s::float8[]) AS r(endpoint, capacity, refill_rate, cost)
),
locked AS MATERIALIZED (
    SELECT b.endpoint, q.capacity, q.refill_rate, q.cost,
           least(q.capacity,
                 b.tokens + greatest(0, date_part('epoch', now() - b.refilled_at))
                            * q.refill_rate) AS avail,
           greatest(b.refilled_at, now()) AS at
      FROM rate_limits AS b
      JOIN req AS q ON q.endpoint = b.endpoint
     WHERE b.user_id = %(user_id)s AND b.endpoint = ANY (%(endpoints)s::text[])
     ORDER BY b.endpoint
       FOR UPDATE OF b
),
decision AS (
    SELECT count(*) = cardinality(%(endpoints)s::text[]) AS complete,
           coalesce(bool_and(l.avail >= l.cost), false) AS ok
      FROM locked AS l
),
consumed AS (
    UPDATE rate_limits AS b
       SET capacity = l.capacity,
           refill_rate = l.refill_rate,
           tokens = CASE WHEN d.ok THEN l.avail - l.cost ELSE l.avail END,
           refilled_at = l.at,
           allowed_count = b.allowed_count + d.ok::int,
           denied_count = b.denied_count + (NOT d.ok)::int,
           last_allowed = d.ok
      FROM locked AS l, decision AS d
     WHERE d.complete AND b.user_id = %(user_id)s AND b.endpoint = l.endpoint
 RETURNING b.endpoint, b.tokens, date_part('epoch', b.refilled_at - now()) AS lag
)
SELECT d.complete, d.ok, c.endpoint, c.tokens, c.lag
  FROM decision AS d
  LEFT JOIN consumed AS c ON true
"""

# reset: delete one bucket of a user, or every one when `endpoint` is NULL (a primary-key
# prefix scan); the next check starts full, counters from zero.
RESET: LiteralString = """
DELETE FROM rate_limits
 WHERE user_id = %(user_id)s AND (%(endpoint)s::text IS NULL OR endpoint = %(endpoint)s::text)
"""

# usage: allowed/denied counters of every bucket of a user, by endpoint; only buckets
# checked at or after `since` unless it is NULL.
USAGE: LiteralString = """
SELECT endpoint, allowed_count, denied_count, created_at, refilled_at
  FROM rate_limits
 WHERE user_id = %(user_id)s
   AND (%(since)s::timestamptz IS NULL OR refilled_at >= %(since)s::timestamptz)
 ORDER BY endpoint
"""

# cleanup, sizing: how many heap blocks the table has now (rows added later are new, not
# idle, so the walk may stop there).
HEAP_BLOCKS: LiteralString = """
SELECT (pg_relation_size('rate_limits') / current_setting('block_size')::int)::int
"""

# cleanup, one batch: delete the idle buckets in heap blocks [lo, hi) — a TID range scan,
# so each batch reads only its blocks and the whole walk reads the table once (no index
# on refilled_at: it changes on every check and would make every update non-HOT). Only
# buckets that have refilled to capacity go: deleting one is then invisible (an absent
# bucket is a full one). SKIP LOCKED: a bucket being checked right now is not idle, and
# several cleaners never wait on each other.
DELETE_IDLE_BATCH: LiteralString = """
DELETE FROM rate_limits
 WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM rate_limits
         WHERE ctid >= %(lo)s::tid AND ctid < %(hi)s::tid
           AND refilled_at < now() - make_interval(secs => %(idle_seconds)s)
           AND tokens + date_part('epoch', now() - refilled_at) * refill_rate >= capacity
           FOR UPDATE SKIP LOCKED))
"""

# check-and-consume of several buckets at once (group commit, digitwin_db.batching): what
# CHECK_AND_CONSUME does, for each element of the parallel arrays, in ONE statement (one
# transaction: one now(), one commit). Rows are inserted — and locked — in array order, which
# the caller sorts by (user_id, endpoint); each (user_id, endpoint) appears at most once (a
# statement may not update a row twice). The cost of a row is capacity - tokens of its
# would-be insert (exact for whole numbers in float8). Returns the key of each row, then
# CHECK_AND_CONSUME's columns.
CHECK_AND_CONSUME_MANY: LiteralString = """
INSERT INTO rate_limits AS b
       (user_id, endpoint, capacity, refill_rate, tokens, refilled_at, allowed_count, last_allowed)
SELECT r.user_id, r.endpoint, r.capacity, r.refill_rate, r.capacity - r.cost, now(), 1, true
  FROM unnest(%(user_ids)s::text[], %(endpoints)s::text[], %(capacities)s::float8[],
              %(refill_rates)s::float8[], %(costs)s::float8[])
       WITH ORDINALITY AS r(user_id, endpoint, capacity, refill_rate, cost, ord)
 ORDER BY r.ord
ON CONFLICT (user_id, endpoint) DO UPDATE SET
    (capacity, refill_rate, tokens, refilled_at, allowed_count, denied_count, last_allowed) = (
        SELECT EXCLUDED.capacity, EXCLUDED.refill_rate,
               CASE WHEN s.ok THEN s.avail - s.cost ELSE s.avail END,
               s.at,
               b.allowed_count + s.ok::int,
               b.denied_count + (NOT s.ok)::int,
               s.ok
          FROM (SELECT r.avail, r.at, r.cost, r.avail >= r.cost AS ok
                  FROM (SELECT least(EXCLUDED.capacity,
                                     b.tokens
                                     + greatest(0, date_part('epoch', now() - b.refilled_at))
                                       * EXCLUDED.refill_rate) AS avail,
                               greatest(b.refilled_at, now()) AS at,
                               EXCLUDED.capacity - EXCLUDED.tokens AS cost) AS r) AS s)
RETURNING b.user_id, b.endpoint, b.last_allowed, b.tokens,
          date_part('epoch', b.refilled_at - now())
"""
