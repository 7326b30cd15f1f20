-- Tenant isolation (SPEC §2.12): row-level security on the user-owned tables. A transaction
-- that has run set_config('digitwin.user_id', <uuid>, true) (factory.for_user(...)) sees and
-- writes only that user's rows, even with raw SQL; without the setting (unscoped service
-- code, the cleanup job) every row is visible as before. The owner and superusers bypass
-- row-level security (the policies bind the application and maintenance roles).
-- depends: 0006_audit_chain

-- The user this transaction is scoped to, or NULL (unscoped). Inlinable SQL (no SET clause).
CREATE FUNCTION digitwin_current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('digitwin.user_id', true), '')::uuid
$$;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_tenant ON users
    USING (digitwin_current_user_id() IS NULL OR id = digitwin_current_user_id())
    WITH CHECK (digitwin_current_user_id() IS NULL OR id = digitwin_current_user_id());

-- The policy columns are indexed: voice_models_user_idx, face_models_user_idx,
-- conversation_sessions_user_started_idx, knowledge_documents_user_created_idx (user_id
-- first); turns go through their session (conversation_turns_session_number_key, the
-- sessions' primary key).
ALTER TABLE voice_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY voice_models_tenant ON voice_models
    USING (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id())
    WITH CHECK (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id());

ALTER TABLE face_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY face_models_tenant ON face_models
    USING (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id())
    WITH CHECK (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id());

ALTER TABLE conversation_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversation_sessions_tenant ON conversation_sessions
    USING (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id())
    WITH CHECK (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id());

ALTER TABLE knowledge_documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY knowledge_documents_tenant ON knowledge_documents
    USING (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id())
    WITH CHECK (digitwin_current_user_id() IS NULL OR user_id = digitwin_current_user_id());

-- Turns belong to a user through their session. The check is a function of the row's own
-- column (an inlinable SQL function, not a subquery in the policy), so that the policy
-- survives a table's conversion to partitions (digitwin_copy_table_extras re-creates it
-- from its text). Its sessions query is itself filtered by the sessions' policy.
CREATE FUNCTION digitwin_session_visible(p_session_id uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT digitwin_current_user_id() IS NULL OR EXISTS (
        SELECT 1 FROM conversation_sessions s
         WHERE s.id = p_session_id AND s.user_id = digitwin_current_user_id())
$$;

ALTER TABLE conversation_turns ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversation_turns_tenant ON conversation_turns
    USING (digitwin_session_visible(session_id))
    WITH CHECK (digitwin_session_visible(session_id));
