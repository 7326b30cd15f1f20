DROP TRIGGER IF EXISTS audit_logs_chain_row ON audit_logs;
DROP FUNCTION IF EXISTS audit_logs_chain();
DROP FUNCTION IF EXISTS digitwin_audit_row_hash(audit_logs);
DROP FUNCTION IF EXISTS digitwin_audit_pii_hash(audit_logs);
DROP FUNCTION IF EXISTS digitwin_audit_field(text);
DROP TABLE IF EXISTS audit_chain_anchors;
DROP TABLE IF EXISTS audit_chain_head;
DROP INDEX IF EXISTS audit_logs_chain_seq_idx;
ALTER TABLE audit_logs
    DROP COLUMN IF EXISTS chain_seq,
    DROP COLUMN IF EXISTS pii_hash,
    DROP COLUMN IF EXISTS prev_hash,
    DROP COLUMN IF EXISTS row_hash,
    DROP COLUMN IF EXISTS anonymised_at;

-- The purge and anonymisation of 0005 (without anchors / anonymised_at).
CREATE OR REPLACE FUNCTION digitwin_audit_purge(p_days double precision, p_batch_size integer) RETURNS integer
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

CREATE OR REPLACE FUNCTION digitwin_audit_anonymise(p_user_id uuid) RETURNS integer
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
