DROP FUNCTION IF EXISTS digitwin_audit_process_erasures(integer);
DROP FUNCTION IF EXISTS digitwin_audit_anonymise(uuid);
DROP FUNCTION IF EXISTS digitwin_audit_purge(double precision, integer);
DROP TABLE IF EXISTS audit_erasure_requests;
DROP TABLE IF EXISTS audit_policy;

-- Back to the guard of 0004 (the session-variable switch).
CREATE OR REPLACE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    mode text := coalesce(current_setting('digitwin.audit_maintenance', true), '');
BEGIN
    IF TG_OP = 'DELETE' AND mode = 'purge' THEN
        RETURN OLD;
    ELSIF TG_OP = 'UPDATE' AND mode = 'erase' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
