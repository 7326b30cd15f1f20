-- Back to one plain conversation_turns table with every row (the partitions' rows are
-- copied), its original keys, and whatever grants/policies/indexes the partitioned table had.
-- depends: 0001_core

CREATE FUNCTION pg_temp.digitwin_copy_table_extras(src regclass, dst regclass) RETURNS void
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

ALTER TABLE conversation_turns RENAME TO conversation_turns_partitioned;
ALTER TABLE conversation_turns_partitioned
    RENAME CONSTRAINT conversation_turns_pkey TO conversation_turns_partitioned_pkey;

CREATE TABLE conversation_turns (
    LIKE conversation_turns_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
        INCLUDING GENERATED INCLUDING COMMENTS INCLUDING STORAGE,
    CONSTRAINT conversation_turns_pkey PRIMARY KEY (id),
    -- Turn numbers are unique per session; add_turn also makes them gap-free.
    CONSTRAINT conversation_turns_session_number_key UNIQUE (session_id, turn_number)
);
-- (A DO block rather than a SELECT: yoyo would print a SELECT's result.)
DO $$ BEGIN
    PERFORM pg_temp.digitwin_copy_table_extras('conversation_turns_partitioned',
                                               'conversation_turns');
END $$;
INSERT INTO conversation_turns SELECT * FROM conversation_turns_partitioned;

DROP TABLE conversation_turns_partitioned;  -- and with it every partition
DROP FUNCTION IF EXISTS conversation_turns_drop_partitions(timestamptz);
DROP FUNCTION IF EXISTS conversation_turns_ensure_partitions(integer);
DROP FUNCTION IF EXISTS conversation_turns_create_partition(timestamptz);
