-- Append-only by privilege: the application role gets INSERT/SELECT on audit_logs only (see
-- `python -m digitwin_db grant`); the retention purge and GDPR anonymisation are owner-defined
-- SECURITY DEFINER functions with a fixed search_path, executable by the maintenance role only.
-- The session-variable switch of 0004 (digitwin.audit_maintenance) is gone.
-- depends: 0004_audit_logs

-- The floor under every retention purge: rows younger than this are never purged, whatever
-- the caller asks. One row; the owner may raise or lower it (UPDATE audit_policy ...).
CREATE TABLE audit_policy (
    singleton          boolean PRIMARY KEY DEFAULT true CONSTRAINT audit_policy_singleton CHECK (singleton),
    min_retention_days integer NOT NULL DEFAULT 30
        CONSTRAINT audit_policy_min_retention CHECK (min_retention_days BETWEEN 1 AND 36500)
);
COMMENT ON TABLE audit_policy IS 'Owner-set floor of the audit retention purge (days).';
INSERT INTO audit_policy DEFAULT VALUES;

-- GDPR erasures requested by a role that may not anonymise (the application role): the
-- maintenance job (digitwin_audit_process_erasures) anonymises their audit rows.
CREATE TABLE audit_erasure_requests (
    user_id      uuid        PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_erasure_requests IS 'Users erased by the application whose audit rows await anonymisation.';

-- The guard, second line behind the privileges: UPDATE and DELETE pass only when called from
-- the anonymisation / purge functions below (the call stack, not a setting anyone can SET);
-- TRUNCATE never. It stops the owner's (or a superuser's) accidental statement; the owner can
-- still drop it, which the hash chain (0006) makes visible.
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

-- Retention purge: delete up to p_batch_size rows created more than p_days days ago (server
-- clock), oldest first; refuses a p_days below audit_policy.min_retention_days. Returns the
-- number of rows deleted. Concurrent purges are serialised (transaction-scoped lock).
CREATE FUNCTION digitwin_audit_purge(p_days double precision, p_batch_size integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_floor integer;
    v_cutoff timestamptz;
    v_removed integer;
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
    DELETE FROM public.audit_logs WHERE id IN (
        SELECT id FROM public.audit_logs WHERE created_at < v_cutoff
         ORDER BY created_at LIMIT p_batch_size);
    GET DIAGNOSTICS v_removed = ROW_COUNT;
    RETURN v_removed;
END;
$$;

-- GDPR anonymisation of the audit rows of a user who no longer exists (erase them first):
-- rows the user made lose user id, IP address and user agent; rows about the user lose the
-- resource id; all lose the free-form metadata. Returns the number of rows changed.
CREATE FUNCTION digitwin_audit_anonymise(p_user_id uuid) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_changed integer;
BEGIN
    IF p_user_id IS NULL THEN
        RAISE EXCEPTION 'user id is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM public.users WHERE id = p_user_id) THEN
        RAISE EXCEPTION 'user % still exists: erase the user before anonymising their audit rows', p_user_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE public.audit_logs SET
        user_id     = CASE WHEN user_id = p_user_id THEN NULL ELSE user_id END,
        ip_address  = CASE WHEN user_id = p_user_id THEN NULL ELSE ip_address END,
        user_agent  = CASE WHEN user_id = p_user_id THEN NULL ELSE user_agent END,
        resource_id = CASE WHEN resource_id = p_user_id::text THEN NULL ELSE resource_id END,
        metadata    = '{}'::jsonb
    WHERE user_id = p_user_id OR resource_id = p_user_id::text;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    DELETE FROM public.audit_erasure_requests WHERE user_id = p_user_id;
    RETURN v_changed;
END;
$$;

-- Anonymise the audit rows of up to p_limit queued erasure requests (oldest first); returns
-- the number of requests processed.
CREATE FUNCTION digitwin_audit_process_erasures(p_limit integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_user uuid;
    v_done integer := 0;
BEGIN
    FOR v_user IN
        SELECT user_id FROM public.audit_erasure_requests r
         WHERE NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = r.user_id)
         ORDER BY requested_at LIMIT greatest(p_limit, 0) FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM public.digitwin_audit_anonymise(v_user);
        v_done := v_done + 1;
    END LOOP;
    RETURN v_done;
END;
$$;

-- Functions are executable by PUBLIC by default: only the owner and the roles `grant` names.
REVOKE ALL ON FUNCTION digitwin_audit_purge(double precision, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION digitwin_audit_anonymise(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION digitwin_audit_process_erasures(integer) FROM PUBLIC;
