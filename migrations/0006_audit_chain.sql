-- Tamper evidence: the audit rows form a hash chain. Each row's row_hash covers its content
-- and the previous row's hash; rows are appended under a transaction-scoped lock, so the
-- chain order (chain_seq, gap-free) is the commit order. Verifiable across retention purges:
-- the purge records the hash of the last row of every run it deletes (audit_chain_anchors),
-- so the next surviving row still links to something. `python -m digitwin_db audit verify`
-- recomputes everything in Python; `audit head` prints the head to be kept elsewhere.
-- depends: 0005_audit_privileges

ALTER TABLE audit_logs
    ADD COLUMN chain_seq     bigint,
    -- sha256 of the personal fields (user_id, resource_id, ip_address, user_agent, metadata):
    -- GDPR anonymisation clears those fields but keeps this digest, so the chain still holds.
    ADD COLUMN pii_hash      bytea,
    ADD COLUMN prev_hash     bytea,
    ADD COLUMN row_hash      bytea,
    -- Set by digitwin_audit_anonymise: the personal fields were cleared on purpose.
    ADD COLUMN anonymised_at timestamptz;
-- verify walks the chain in order; the trigger reads the last link after a truncation.
-- Not UNIQUE, so that it works on a partitioned table (the lock keeps chain_seq unique;
-- verify reports a duplicate).
CREATE INDEX audit_logs_chain_seq_idx ON audit_logs (chain_seq);

-- The newest link: one row, updated by every append under the chain lock.
CREATE TABLE audit_chain_head (
    singleton  boolean     PRIMARY KEY DEFAULT true CONSTRAINT audit_chain_head_singleton CHECK (singleton),
    seq        bigint      NOT NULL,
    row_hash   bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_chain_head IS 'Newest link of the audit hash chain (seq, hash).';

-- Links whose rows were purged but whose successor was not (yet): the successor's
-- prev_hash is checked against them. Dropping a partition must add the same (the row_hash
-- of the partition's last row in chain order).
CREATE TABLE audit_chain_anchors (
    seq       bigint      PRIMARY KEY,
    row_hash  bytea       NOT NULL,
    purged_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_chain_anchors IS 'Hashes of purged audit rows that the surviving chain links to.';

-- The canonical encoding (digitwin_db/audit_chain.py implements the same): each field as
-- "<octets>:<text>", NULL as "~"; the text forms below are the ones verify reads back.
-- Plain SQL functions without a SET clause, so that the planner inlines them (a SET clause
-- would cost a configuration save/restore per call); they use pg_catalog only, which is
-- always searched first.
CREATE FUNCTION digitwin_audit_field(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN t IS NULL THEN '~' ELSE octet_length(t)::text || ':' || t END
$$;

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

-- Existing rows join the chain in id order.
DO $$
DECLARE
    r public.audit_logs;
    v_seq bigint := 0;
    v_hash bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
BEGIN
    ALTER TABLE public.audit_logs DISABLE TRIGGER audit_logs_append_only_row;
    FOR r IN SELECT * FROM public.audit_logs ORDER BY id LOOP
        v_seq := v_seq + 1;
        r.chain_seq := v_seq;
        r.prev_hash := v_hash;
        r.pii_hash := public.digitwin_audit_pii_hash(r);
        v_hash := public.digitwin_audit_row_hash(r);
        UPDATE public.audit_logs
           SET chain_seq = v_seq, prev_hash = r.prev_hash, pii_hash = r.pii_hash, row_hash = v_hash
         WHERE id = r.id;
    END LOOP;
    ALTER TABLE public.audit_logs ENABLE TRIGGER audit_logs_append_only_row;
    IF v_seq > 0 THEN
        INSERT INTO public.audit_chain_head (seq, row_hash) VALUES (v_seq, v_hash);
    END IF;
END;
$$;

-- Append: under the chain lock (held until commit), take the head, link the new row to it,
-- move the head. SECURITY DEFINER: the application role cannot write the head itself, and
-- whatever it puts in the chain columns is overwritten.
CREATE FUNCTION audit_logs_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_seq bigint;
    v_hash bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(7240431557081411585);  -- 'digitwin audit chain'
    SELECT seq, row_hash INTO v_seq, v_hash FROM public.audit_chain_head;
    IF NOT FOUND THEN
        -- No head (a new table, or one emptied by the owner): continue from the last link.
        SELECT chain_seq, row_hash INTO v_seq, v_hash FROM public.audit_logs
         WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1;
        IF NOT FOUND THEN
            SELECT seq, row_hash INTO v_seq, v_hash FROM public.audit_chain_anchors
             ORDER BY seq DESC LIMIT 1;
        END IF;
        IF v_seq IS NULL THEN
            v_seq := 0;
            v_hash := '\x0000000000000000000000000000000000000000000000000000000000000000';
        END IF;
        INSERT INTO public.audit_chain_head (seq, row_hash) VALUES (v_seq, v_hash);
    END IF;
    NEW.chain_seq := v_seq + 1;
    NEW.prev_hash := v_hash;
    NEW.anonymised_at := NULL;
    NEW.pii_hash := public.digitwin_audit_pii_hash(NEW);
    NEW.row_hash := public.digitwin_audit_row_hash(NEW);
    UPDATE public.audit_chain_head SET seq = NEW.chain_seq, row_hash = NEW.row_hash, updated_at = now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_logs_chain_row
    BEFORE INSERT ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_chain();

-- The purge now records the anchors the surviving chain needs, and forgets those it no
-- longer needs (their successor was purged too).
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
    WITH gone AS (
        DELETE FROM public.audit_logs WHERE id IN (
            SELECT id FROM public.audit_logs WHERE created_at < v_cutoff
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
    SELECT count(*) INTO v_removed FROM gone;
    IF v_removed > 0 THEN
        DELETE FROM public.audit_chain_anchors a
         WHERE a.seq < (SELECT h.seq FROM public.audit_chain_head h)
           AND NOT EXISTS (SELECT 1 FROM public.audit_logs l WHERE l.chain_seq = a.seq + 1);
    END IF;
    RETURN v_removed;
END;
$$;

-- Anonymisation records that the personal fields were cleared on purpose (verify then
-- trusts pii_hash for that row; the rest of the row is still checked).
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
        metadata    = '{}'::jsonb,
        anonymised_at = coalesce(anonymised_at, now())
    WHERE user_id = p_user_id OR resource_id = p_user_id::text;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    DELETE FROM public.audit_erasure_requests WHERE user_id = p_user_id;
    RETURN v_changed;
END;
$$;
REVOKE ALL ON FUNCTION digitwin_audit_purge(double precision, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION digitwin_audit_anonymise(uuid) FROM PUBLIC;
