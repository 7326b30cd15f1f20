-- audit_logs partitioned by month (RANGE on created_at, UTC months), converted in place with
-- every row kept, its hash chain untouched (the rows are copied verbatim: same id,
-- chain_seq, prev_hash, row_hash). Why: the trail only grows; a month is one partition, so
-- retention detaches and drops a whole partition (no DELETE, no dead tuples, no VACUUM
-- debt) and time-bounded queries prune to a few partitions. A DEFAULT partition takes any
-- timestamp outside the prepared months, so an insert never fails for want of a partition.
--
-- Keys: a primary key of a partitioned table must include the partition column, so the key
-- is (id, created_at); ids still come from one identity sequence (continued from the old
-- table's), so they stay unique. chain_seq is kept unique by the chain lock (0006).
--
-- Partitions are created ahead (the current month and the next three) by this migration,
-- by `digitwin-db migrate` and by the cleanup job, through
-- audit_logs_ensure_partitions(months_ahead). Retention drops whole months through
-- digitwin_audit_drop_partitions(days, batch_size) (maintenance role only), which records
-- in audit_chain_anchors (0006) the hash of every dropped row whose successor survives, so
-- `audit verify` still checks the surviving chain from its first row on.
--
-- The append-only guard (0005) is per row and per statement: the row triggers are cloned to
-- every partition; TRUNCATE triggers are not (a TRUNCATE of a partition does not fire its
-- parent's), so every partition gets its own.
-- depends: 0006_audit_chain 0013_turn_partitions

-- The guard: DELETE also from the partition drop (rows of the default partition past
-- retention) and from the creation of a month partition (which moves that month's rows out
-- of the default partition into the new one, unchanged).
CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stack text;
BEGIN
    GET DIAGNOSTICS stack = PG_CONTEXT;
    IF TG_OP = 'DELETE' AND stack ~ 'function (public\.)?(digitwin_audit_purge|digitwin_audit_drop_partitions|audit_logs_create_partition)\(' THEN
        RETURN OLD;
    ELSIF TG_OP = 'UPDATE' AND stack ~ 'function (public\.)?digitwin_audit_anonymise\(' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

ALTER TABLE audit_logs RENAME TO audit_logs_unpartitioned;
ALTER TABLE audit_logs_unpartitioned
    RENAME CONSTRAINT audit_logs_pkey TO audit_logs_unpartitioned_pkey;
ALTER SEQUENCE audit_logs_id_seq RENAME TO audit_logs_unpartitioned_id_seq;

-- Same columns, identity, defaults and CHECK constraints (LIKE copies whatever is there).
CREATE TABLE audit_logs (
    LIKE audit_logs_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY
        INCLUDING GENERATED INCLUDING COMMENTS INCLUDING STORAGE,
    CONSTRAINT audit_logs_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- The chain's hash functions take the table's row type: the same bodies (0006) for the new
-- table (the old ones go with the old table below).
CREATE FUNCTION digitwin_audit_pii_hash(a public.audit_logs) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(
        public.digitwin_audit_field(a.user_id::text)
        || public.digitwin_audit_field(a.resource_id)
        || public.digitwin_audit_field(a.ip_address::text)
        || public.digitwin_audit_field(a.user_agent)
        || public.digitwin_audit_field(a.metadata::text), 'UTF8'))
$$;

CREATE FUNCTION digitwin_audit_row_hash(a public.audit_logs) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT sha256(a.prev_hash || convert_to(
        public.digitwin_audit_field(a.chain_seq::text)
        || public.digitwin_audit_field(a.id::text)
        || public.digitwin_audit_field(to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))
        || public.digitwin_audit_field(a.action)
        || public.digitwin_audit_field(a.resource_type)
        || public.digitwin_audit_field(a.result)
        || public.digitwin_audit_field(encode(a.pii_hash, 'hex')), 'UTF8'))
$$;

CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;
CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON audit_logs_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();

-- One month partition [month_start, next month) of audit_logs, with its TRUNCATE guard.
-- Rows of that month that are in the default partition are moved into it first, unchanged
-- (otherwise attaching would fail). Returns the partition's name. SECURITY DEFINER: the
-- cleanup job may run as a role that cannot create tables.
CREATE FUNCTION audit_logs_create_partition(month_start timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $fn$
DECLARE
    lo timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC') + interval '1 month')
                      AT TIME ZONE 'UTC';
    part text := 'audit_logs_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF month_start IS NULL OR NOT isfinite(month_start) THEN
        RAISE EXCEPTION 'month_start must be a finite timestamp, got %', month_start
            USING ERRCODE = '22023';
    END IF;
    -- Two cleaners (or a cleaner and a migrate) creating the same month: one waits here,
    -- then finds it done.
    PERFORM pg_advisory_xact_lock(7240431557081411586);  -- 'digitwin audit partitions'
    IF to_regclass('public.' || part) IS NOT NULL THEN
        RETURN part;
    END IF;
    IF EXISTS (SELECT 1 FROM public.audit_logs_default
                WHERE created_at >= lo AND created_at < hi) THEN
        EXECUTE format('CREATE TABLE public.%I (LIKE public.audit_logs '
                       'INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part);
        EXECUTE format('WITH moved AS (DELETE FROM public.audit_logs_default '
                       'WHERE created_at >= %L AND created_at < %L RETURNING *) '
                       'INSERT INTO public.%I SELECT * FROM moved', lo, hi, part);
        EXECUTE format('ALTER TABLE public.audit_logs ATTACH PARTITION public.%I '
                       'FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.audit_logs '
                       'FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    END IF;
    EXECUTE format('CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON public.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION public.audit_logs_append_only()', part);
    RETURN part;
END
$fn$;
COMMENT ON FUNCTION audit_logs_create_partition(timestamptz) IS
    'Create the month partition of audit_logs holding month_start (UTC); idempotent.';

-- The current UTC month and the next months_ahead months; returns how many were created.
CREATE FUNCTION audit_logs_ensure_partitions(months_ahead integer DEFAULT 3)
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
        part := 'audit_logs_p' || to_char(first + make_interval(months => i), 'YYYYMM');
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        PERFORM public.audit_logs_create_partition(
            (first + make_interval(months => i)) AT TIME ZONE 'UTC');
        created := created + 1;
    END LOOP;
    RETURN created;
END
$fn$;
COMMENT ON FUNCTION audit_logs_ensure_partitions(integer) IS
    'Create the month partitions of audit_logs from this UTC month to months_ahead ahead.';

-- Retention by partition: detach and drop every month partition that ends at or before
-- now() - p_days days (server clock), then delete up to p_batch_size rows of the default
-- partition older than that (oldest first). Refuses a p_days below the owner's floor
-- (audit_policy.min_retention_days), like digitwin_audit_purge, and takes the same lock.
-- The chain stays verifiable: every removed row whose successor (chain_seq + 1) is not
-- removed with it leaves its (chain_seq, row_hash) in audit_chain_anchors; anchors whose
-- successor is gone too are forgotten. Returns the rows removed. A month partially past
-- retention is kept whole until its end is: rows live at most a month longer than p_days
-- (digitwin_audit_purge still deletes row by row when an exact cut is needed).
CREATE FUNCTION digitwin_audit_drop_partitions(p_days double precision, p_batch_size integer)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    v_floor integer;
    v_cutoff timestamptz;
    r record;
    v_removed bigint := 0;
    n bigint;
BEGIN
    SELECT min_retention_days INTO v_floor FROM public.audit_policy;
    v_floor := coalesce(v_floor, 30);
    IF p_days IS NULL OR p_days = 'NaN'::double precision OR p_days < v_floor THEN
        RAISE EXCEPTION 'audit rows are kept at least % days: a purge of rows younger than that is refused', v_floor
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 THEN
        RAISE EXCEPTION 'batch size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(7240431557081411584);  -- 'digitwin audit purge'
    v_cutoff := now() - p_days * interval '1 day';
    FOR r IN SELECT c.relname
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'public.audit_logs'::regclass
                AND c.relname ~ '^audit_logs_p[0-9]{6}$'
                AND (to_date(substr(c.relname, 13), 'YYYYMM')::timestamp
                     + interval '1 month') AT TIME ZONE 'UTC' <= v_cutoff
              ORDER BY c.relname LOOP
        EXECUTE format('ALTER TABLE public.audit_logs DETACH PARTITION public.%I', r.relname);
        EXECUTE format(
            'INSERT INTO public.audit_chain_anchors (seq, row_hash) '
            'SELECT s, h FROM (SELECT chain_seq AS s, row_hash AS h, '
            '                         lead(chain_seq) OVER (ORDER BY chain_seq) AS next_seq '
            '                    FROM public.%I WHERE chain_seq IS NOT NULL) AS links '
            ' WHERE next_seq IS DISTINCT FROM s + 1 '
            'ON CONFLICT (seq) DO NOTHING', r.relname);
        EXECUTE format('SELECT count(*) FROM public.%I', r.relname) INTO n;
        EXECUTE format('DROP TABLE public.%I', r.relname);
        v_removed := v_removed + n;
    END LOOP;
    -- Stray rows (timestamps outside the prepared months) past retention: one batch.
    WITH gone AS (
        DELETE FROM public.audit_logs_default WHERE id IN (
            SELECT id FROM public.audit_logs_default WHERE created_at < v_cutoff
             ORDER BY created_at LIMIT p_batch_size)
        RETURNING chain_seq, row_hash
    ), anchored AS (
        INSERT INTO public.audit_chain_anchors (seq, row_hash)
        SELECT g.chain_seq, g.row_hash FROM gone g
         WHERE g.chain_seq IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM gone n WHERE n.chain_seq = g.chain_seq + 1)
        ON CONFLICT (seq) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO n FROM gone;
    v_removed := v_removed + n;
    IF v_removed > 0 THEN
        DELETE FROM public.audit_chain_anchors a
         WHERE a.seq < (SELECT h.seq FROM public.audit_chain_head h)
           AND NOT EXISTS (SELECT 1 FROM public.audit_logs l WHERE l.chain_seq = a.seq + 1);
    END IF;
    RETURN v_removed;
END
$fn$;
COMMENT ON FUNCTION digitwin_audit_drop_partitions(double precision, integer) IS
    'Audit retention: drop the month partitions of audit_logs past p_days (anchoring the chain).';
-- Functions are executable by PUBLIC by default: only the owner and the maintenance role.
REVOKE ALL ON FUNCTION digitwin_audit_drop_partitions(double precision, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_logs_create_partition(timestamptz) FROM PUBLIC;

-- A partition for every month that has rows, then the current month and three ahead.
DO $$ BEGIN
    PERFORM audit_logs_create_partition(m AT TIME ZONE 'UTC')
       FROM (SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') AS m
               FROM audit_logs_unpartitioned) AS months
      ORDER BY m;
    PERFORM audit_logs_ensure_partitions(3);
END $$;

-- The rows, verbatim, before any trigger exists on the new table (the chain trigger would
-- re-link them).
INSERT INTO audit_logs OVERRIDING SYSTEM VALUE SELECT * FROM audit_logs_unpartitioned;

-- Then the indexes, triggers (append-only guard, chain), grants and comment of the old
-- table; and the identity continues where the old one stopped.
-- (DO blocks rather than SELECTs: yoyo would print a SELECT's result.)
DO $$
DECLARE
    v_last bigint;
    v_called boolean;
BEGIN
    PERFORM digitwin_copy_table_extras('audit_logs_unpartitioned', 'audit_logs');
    SELECT last_value, is_called INTO v_last, v_called FROM audit_logs_unpartitioned_id_seq;
    PERFORM setval(pg_get_serial_sequence('public.audit_logs', 'id'), v_last, v_called);
END $$;

DROP FUNCTION digitwin_audit_row_hash(audit_logs_unpartitioned);
DROP FUNCTION digitwin_audit_pii_hash(audit_logs_unpartitioned);
DROP TABLE audit_logs_unpartitioned;
ANALYZE audit_logs;
