-- Append-only audit trail. Fully durable (logged, synchronous commit).
-- depends: 0001_core

CREATE TABLE audit_logs (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key: audit rows outlive the users they mention (erase() removes the link).
    user_id       uuid,
    action        text        NOT NULL CONSTRAINT audit_logs_action_format CHECK (action ~ '^[A-Za-z0-9_.:/-]{1,100}$'),
    resource_type text        CONSTRAINT audit_logs_resource_type_length CHECK (length(resource_type) BETWEEN 1 AND 100),
    resource_id   text        CONSTRAINT audit_logs_resource_id_length CHECK (length(resource_id) BETWEEN 1 AND 200),
    result        text        NOT NULL DEFAULT 'success'
        CONSTRAINT audit_logs_result CHECK (result IN ('success', 'failure', 'denied')),
    ip_address    inet,
    user_agent    text        CONSTRAINT audit_logs_user_agent_length CHECK (length(user_agent) <= 1024),
    metadata      jsonb       NOT NULL DEFAULT '{}' CONSTRAINT audit_logs_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_logs IS 'Append-only audit trail; UPDATE/DELETE refused except the retention purge and GDPR erasure.';
-- Retention purge and time-range queries.
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at);
CREATE INDEX audit_logs_user_created_idx ON audit_logs (user_id, created_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX audit_logs_action_created_idx ON audit_logs (action, created_at DESC);
-- GDPR erasure finds the rows that name the user as their resource (resource_id = id::text);
-- without it, erase() would scan the whole trail.
CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_id) WHERE resource_id IS NOT NULL;

-- The guard: only a transaction that has run SET LOCAL digitwin.audit_maintenance = 'purge'
-- (retention purge: DELETE) or = 'erase' (GDPR: UPDATE that removes personal data) may
-- change rows. Everything else, including TRUNCATE, is refused.
CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER audit_logs_append_only_row
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();

CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();
