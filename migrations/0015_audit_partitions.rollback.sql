-- Back to one plain audit_logs table with every row (the partitions' rows are copied
-- verbatim, so the hash chain still verifies), its original key, the identity continued,
-- and whatever grants/indexes/triggers the partitioned table had. Anchors recorded by
-- partition drops stay (the chain needs them).

ALTER TABLE audit_logs RENAME TO audit_logs_partitioned;
ALTER TABLE audit_logs_partitioned
    RENAME CONSTRAINT audit_logs_pkey TO audit_logs_partitioned_pkey;
ALTER SEQUENCE audit_logs_id_seq RENAME TO audit_logs_partitioned_id_seq;

CREATE TABLE audit_logs (
    LIKE audit_logs_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY
        INCLUDING GENERATED INCLUDING COMMENTS INCLUDING STORAGE,
    CONSTRAINT audit_logs_pkey PRIMARY KEY (id)
);

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

-- The rows first (no trigger on the new table yet), then the extras.
INSERT INTO audit_logs OVERRIDING SYSTEM VALUE SELECT * FROM audit_logs_partitioned;
-- (A DO block rather than a SELECT: yoyo would print a SELECT's result.)
DO $$
DECLARE
    v_last bigint;
    v_called boolean;
BEGIN
    PERFORM digitwin_copy_table_extras('audit_logs_partitioned', 'audit_logs');
    SELECT last_value, is_called INTO v_last, v_called FROM audit_logs_partitioned_id_seq;
    PERFORM setval(pg_get_serial_sequence('public.audit_logs', 'id'), v_last, v_called);
END $$;

DROP FUNCTION digitwin_audit_row_hash(audit_logs_partitioned);
DROP FUNCTION digitwin_audit_pii_hash(audit_logs_partitioned);
DROP TABLE audit_logs_partitioned;  -- and with it every partition
DROP FUNCTION IF EXISTS digitwin_audit_drop_partitions(double precision, integer);
DROP FUNCTION IF EXISTS audit_logs_ensure_partitions(integer);
DROP FUNCTION IF EXISTS audit_logs_create_partition(timestamptz);

-- The guard of 0005.
CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    stack text;
BEGIN
    GET DIAGNOSTICS stack = PG_CONTEXT;
    IF TG_OP = 'DELETE' AND stack ~ 'function (public\.)?digitwin_audit_purge\(' THEN
        RETURN OLD;
    ELSIF TG_OP = 'UPDATE' AND stack ~ 'function (public\.)?digitwin_audit_anonymise\(' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
ANALYZE audit_logs;
