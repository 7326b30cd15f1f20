-- conversation_turns partitioned by month (RANGE on created_at, UTC months), converted in
-- place with every row kept. Why: the table only grows; a month is one partition, so
-- retention drops a whole partition (no DELETE, no dead tuples, no VACUUM debt) and
-- time-bounded reads prune to a few partitions. A DEFAULT partition takes any timestamp
-- outside the prepared months, so an insert never fails for want of a partition.
--
-- Keys: a primary key or unique constraint of a partitioned table must include the
-- partition column, so the key is (id, created_at). "Turn numbers unique per session" is
-- kept by add_turn (the session row hands out numbers under its row lock) and, as a
-- backstop, by a UNIQUE (session_id, turn_number) index on each partition (a session that
-- spans a month boundary has its turns in two partitions; only the counter guards across).
--
-- Partitions are created ahead (the current month and the next three) by this migration,
-- by `digitwin-db migrate` and by the cleanup job, through
-- conversation_turns_ensure_partitions(months_ahead); retention drops whole months through
-- conversation_turns_drop_partitions(older_than).
-- depends: 0001_core

-- Give table DST the foreign keys, plain indexes, triggers, privileges, row-level security
-- policies and comment of table SRC, so that whatever other migrations added to a table
-- (grants to the application role, RLS policies) survives its conversion to a partitioned
-- table (this migration, its rollback, and the same conversion of other tables).
CREATE FUNCTION digitwin_copy_table_extras(src regclass, dst regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    src_q text := (SELECT format('%I.%I', n.nspname, c.relname)
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.oid = src);
    dst_q text := (SELECT format('%I.%I', n.nspname, c.relname)
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.oid = dst);
BEGIN
    FOR r IN SELECT conname, pg_get_constraintdef(oid) AS def
               FROM pg_constraint WHERE conrelid = src AND contype = 'f' ORDER BY conname LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', dst_q, r.conname, r.def);
    END LOOP;
    -- Indexes that back no constraint (the keys are declared explicitly by the caller).
    FOR r IN SELECT i.indexrelid::regclass AS idx, pg_get_indexdef(i.indexrelid) AS def
               FROM pg_index i
              WHERE i.indrelid = src
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
              ORDER BY 1 LOOP
        EXECUTE format('DROP INDEX %s', r.idx);
        EXECUTE replace(replace(r.def, ' ON ONLY ' || src_q || ' ', ' ON ' || dst_q || ' '),
                        ' ON ' || src_q || ' ', ' ON ' || dst_q || ' ');
    END LOOP;
    FOR r IN SELECT pg_get_triggerdef(oid) AS def
               FROM pg_trigger WHERE tgrelid = src AND NOT tgisinternal ORDER BY tgname LOOP
        EXECUTE replace(r.def, ' ON ' || src_q || ' ', ' ON ' || dst_q || ' ');
    END LOOP;
    FOR r IN SELECT a.grantee, a.privilege_type, a.is_grantable
               FROM pg_class c, aclexplode(c.relacl) a
              WHERE c.oid = src AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', r.privilege_type, dst_q,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                            ELSE quote_ident(pg_get_userbyid(r.grantee)) END,
                       CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
    IF (SELECT relrowsecurity FROM pg_class WHERE oid = src) THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', dst_q);
    END IF;
    IF (SELECT relforcerowsecurity FROM pg_class WHERE oid = src) THEN
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', dst_q);
    END IF;
    FOR r IN SELECT p.polname, p.polpermissive, p.polcmd, p.polroles,
                    pg_get_expr(p.polqual, p.polrelid) AS qual,
                    pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
               FROM pg_policy p WHERE p.polrelid = src ORDER BY p.polname LOOP
        EXECUTE format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', r.polname, dst_q,
                       CASE WHEN r.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                       CASE r.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT'
                                     WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                       (SELECT string_agg(CASE WHEN role = 0 THEN 'PUBLIC'
                                               ELSE quote_ident(pg_get_userbyid(role)) END, ', ')
                          FROM unnest(r.polroles) AS role),
                       coalesce(' USING (' || r.qual || ')', ''),
                       coalesce(' WITH CHECK (' || r.with_check || ')', ''));
    END LOOP;
    EXECUTE format('COMMENT ON TABLE %s IS %L', dst_q, obj_description(src, 'pg_class'));
END
$fn$;
REVOKE EXECUTE ON FUNCTION digitwin_copy_table_extras(regclass, regclass) FROM PUBLIC;

ALTER TABLE conversation_turns RENAME TO conversation_turns_unpartitioned;
ALTER TABLE conversation_turns_unpartitioned
    RENAME CONSTRAINT conversation_turns_pkey TO conversation_turns_unpartitioned_pkey;
ALTER TABLE conversation_turns_unpartitioned
    RENAME CONSTRAINT conversation_turns_session_number_key
    TO conversation_turns_unpartitioned_session_number_key;

-- Same columns, defaults and CHECK constraints (LIKE copies whatever is there today).
CREATE TABLE conversation_turns (
    LIKE conversation_turns_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
        INCLUDING GENERATED INCLUDING COMMENTS INCLUDING STORAGE,
    CONSTRAINT conversation_turns_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
-- (DO blocks rather than SELECTs: yoyo would print a SELECT's result.)
DO $$ BEGIN
    PERFORM digitwin_copy_table_extras('conversation_turns_unpartitioned', 'conversation_turns');
END $$;

CREATE TABLE conversation_turns_default PARTITION OF conversation_turns DEFAULT;
CREATE UNIQUE INDEX conversation_turns_default_session_number_key
    ON conversation_turns_default (session_id, turn_number);

-- One month partition [month_start, next month) of conversation_turns, with its
-- per-partition unique (session_id, turn_number) index. Rows of that month that are in the
-- default partition are moved into it first (otherwise attaching would fail). Returns the
-- partition's name. SECURITY DEFINER: the cleanup job may run as a role that cannot
-- create tables.
CREATE FUNCTION conversation_turns_create_partition(month_start timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    lo timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC') + interval '1 month')
                      AT TIME ZONE 'UTC';
    part text := 'conversation_turns_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass('public.' || part) IS NOT NULL THEN
        RETURN part;
    END IF;
    IF EXISTS (SELECT 1 FROM public.conversation_turns_default
                WHERE created_at >= lo AND created_at < hi) THEN
        EXECUTE format('CREATE TABLE public.%I (LIKE public.conversation_turns '
                       'INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part);
        EXECUTE format('WITH moved AS (DELETE FROM public.conversation_turns_default '
                       'WHERE created_at >= %L AND created_at < %L RETURNING *) '
                       'INSERT INTO public.%I SELECT * FROM moved', lo, hi, part);
        EXECUTE format('ALTER TABLE public.conversation_turns ATTACH PARTITION public.%I '
                       'FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.conversation_turns '
                       'FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    END IF;
    EXECUTE format('CREATE UNIQUE INDEX %I ON public.%I (session_id, turn_number)',
                   part || '_session_number_key', part);
    RETURN part;
END
$fn$;
COMMENT ON FUNCTION conversation_turns_create_partition(timestamptz) IS
    'Create the month partition of conversation_turns holding month_start (UTC); idempotent.';

-- The current UTC month and the next months_ahead months; returns how many were created.
CREATE FUNCTION conversation_turns_ensure_partitions(months_ahead integer DEFAULT 3)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    first timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    created integer := 0;
    part text;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, got %', months_ahead
            USING ERRCODE = '22023';
    END IF;
    FOR i IN 0..months_ahead LOOP
        part := 'conversation_turns_p'
                || to_char(first + make_interval(months => i), 'YYYYMM');
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        PERFORM public.conversation_turns_create_partition(
            (first + make_interval(months => i)) AT TIME ZONE 'UTC');
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;
COMMENT ON FUNCTION conversation_turns_ensure_partitions(integer) IS
    'Create the month partitions of conversation_turns from this UTC month to months_ahead ahead.';

-- Retention: detach and drop every month partition that ends at or before older_than, and
-- delete default-partition rows older than it. Returns the rows removed. Only the owner
-- (and roles it grants EXECUTE to) may run it.
CREATE FUNCTION conversation_turns_drop_partitions(older_than timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    r record;
    removed bigint := 0;
    n bigint;
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION 'older_than must not be null' USING ERRCODE = '22004';
    END IF;
    FOR r IN SELECT c.relname
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'public.conversation_turns'::regclass
                AND c.relname ~ '^conversation_turns_p[0-9]{6}$'
                AND (to_date(substr(c.relname, 21), 'YYYYMM')::timestamp
                     + interval '1 month') AT TIME ZONE 'UTC' <= older_than
              ORDER BY c.relname LOOP
        EXECUTE format('SELECT count(*) FROM public.%I', r.relname) INTO n;
        EXECUTE format('ALTER TABLE public.conversation_turns DETACH PARTITION public.%I',
                       r.relname);
        EXECUTE format('DROP TABLE public.%I', r.relname);
        removed := removed + n;
    END LOOP;
    DELETE FROM public.conversation_turns_default WHERE created_at < older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN removed + n;
END
$fn$;
COMMENT ON FUNCTION conversation_turns_drop_partitions(timestamptz) IS
    'Retention: drop the month partitions of conversation_turns that end by older_than.';
REVOKE EXECUTE ON FUNCTION conversation_turns_drop_partitions(timestamptz) FROM PUBLIC;

-- A partition for every month that has rows, then the current month and three ahead.
DO $$ BEGIN
    PERFORM conversation_turns_create_partition(m AT TIME ZONE 'UTC')
       FROM (SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') AS m
               FROM conversation_turns_unpartitioned) AS months
      ORDER BY m;
    PERFORM conversation_turns_ensure_partitions(3);
END $$;

INSERT INTO conversation_turns SELECT * FROM conversation_turns_unpartitioned;
DROP TABLE conversation_turns_unpartitioned;
