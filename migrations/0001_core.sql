-- Core system of record: users, voice and face models, conversations, knowledge documents.
-- depends:

CREATE TABLE users (
    id                 uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email              text        NOT NULL
        CONSTRAINT users_email_format CHECK (length(email) BETWEEN 3 AND 320 AND email ~ '^[^@\s]+@[^@\s]+$'),
    name               text        NOT NULL
        CONSTRAINT users_name_length CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    personality_traits text[]      NOT NULL DEFAULT '{}'
        CONSTRAINT users_traits_count CHECK (cardinality(personality_traits) <= 50),
    preferences        jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT users_preferences_object CHECK (jsonb_typeof(preferences) = 'object'),
    settings           jsonb       NOT NULL DEFAULT '{}'
        CONSTRAINT users_settings_object CHECK (jsonb_typeof(settings) = 'object'),
    subscription_tier  text        NOT NULL DEFAULT 'free'
        CONSTRAINT users_subscription_tier CHECK (subscription_tier IN ('free', 'pro', 'enterprise')),
    last_active_at     timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
COMMENT ON TABLE users IS 'Accounts of the digital-twin system; soft-deleted rows keep deleted_at.';
-- Email is unique among live users only, case-insensitively (a deleted user frees the address).
CREATE UNIQUE INDEX users_email_live_key ON users (lower(email)) WHERE deleted_at IS NULL;
-- list(subscription_tier=...) pages live users newest first.
CREATE INDEX users_tier_created_idx ON users (subscription_tier, created_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX users_created_idx ON users (created_at DESC);

CREATE TABLE voice_models (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text        NOT NULL CONSTRAINT voice_models_name_length CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    provider      text        NOT NULL CONSTRAINT voice_models_provider_length CHECK (length(btrim(provider)) BETWEEN 1 AND 100),
    model_ref     text        NOT NULL CONSTRAINT voice_models_model_ref_length CHECK (length(model_ref) BETWEEN 1 AND 1000),
    language      text        CONSTRAINT voice_models_language_length CHECK (length(language) BETWEEN 2 AND 35),
    sample_rate   integer     CONSTRAINT voice_models_sample_rate_range CHECK (sample_rate BETWEEN 8000 AND 192000),
    quality_score real        CONSTRAINT voice_models_quality_range CHECK (quality_score BETWEEN 0 AND 1),
    status        text        NOT NULL DEFAULT 'training'
        CONSTRAINT voice_models_status CHECK (status IN ('training', 'ready', 'failed')),
    is_active     boolean     NOT NULL DEFAULT false,
    metadata      jsonb       NOT NULL DEFAULT '{}' CONSTRAINT voice_models_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    -- Only a live, ready model can be the active one.
    CONSTRAINT voice_models_active_ready CHECK (NOT is_active OR (status = 'ready' AND deleted_at IS NULL))
);
COMMENT ON TABLE voice_models IS 'Voice-cloning models of a user; at most one active per user.';
-- The database, not the code, guarantees one active voice model per user.
CREATE UNIQUE INDEX voice_models_one_active_per_user ON voice_models (user_id) WHERE is_active;
CREATE INDEX voice_models_user_idx ON voice_models (user_id, created_at DESC);

CREATE TABLE face_models (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text        NOT NULL CONSTRAINT face_models_name_length CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    provider      text        NOT NULL CONSTRAINT face_models_provider_length CHECK (length(btrim(provider)) BETWEEN 1 AND 100),
    model_ref     text        NOT NULL CONSTRAINT face_models_model_ref_length CHECK (length(model_ref) BETWEEN 1 AND 1000),
    resolution    text        CONSTRAINT face_models_resolution_format CHECK (resolution ~ '^[0-9]{2,5}x[0-9]{2,5}$'),
    quality_score real        CONSTRAINT face_models_quality_range CHECK (quality_score BETWEEN 0 AND 1),
    status        text        NOT NULL DEFAULT 'training'
        CONSTRAINT face_models_status CHECK (status IN ('training', 'ready', 'failed')),
    is_active     boolean     NOT NULL DEFAULT false,
    metadata      jsonb       NOT NULL DEFAULT '{}' CONSTRAINT face_models_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    CONSTRAINT face_models_active_ready CHECK (NOT is_active OR (status = 'ready' AND deleted_at IS NULL))
);
COMMENT ON TABLE face_models IS 'Face-cloning models of a user; at most one active per user.';
CREATE UNIQUE INDEX face_models_one_active_per_user ON face_models (user_id) WHERE is_active;
CREATE INDEX face_models_user_idx ON face_models (user_id, created_at DESC);

CREATE TABLE conversation_sessions (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A session outlives a model that is hard-deleted later: keep the session, forget the model.
    voice_model_id  uuid        REFERENCES voice_models (id) ON DELETE SET NULL,
    face_model_id   uuid        REFERENCES face_models (id) ON DELETE SET NULL,
    status          text        NOT NULL DEFAULT 'active'
        CONSTRAINT conversation_sessions_status CHECK (status IN ('active', 'ended')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    -- Counters maintained by add_turn in the same transaction as the turn insert.
    turn_count      integer     NOT NULL DEFAULT 0 CONSTRAINT conversation_sessions_turn_count CHECK (turn_count >= 0),
    tokens_in       bigint      NOT NULL DEFAULT 0 CONSTRAINT conversation_sessions_tokens_in CHECK (tokens_in >= 0),
    tokens_out      bigint      NOT NULL DEFAULT 0 CONSTRAINT conversation_sessions_tokens_out CHECK (tokens_out >= 0),
    asr_ms_total    bigint      NOT NULL DEFAULT 0 CONSTRAINT conversation_sessions_asr_ms CHECK (asr_ms_total >= 0),
    llm_ms_total    bigint      NOT NULL DEFAULT 0 CONSTRAINT conversation_sessions_llm_ms CHECK (llm_ms_total >= 0),
    tts_ms_total    bigint      NOT NULL DEFAULT 0 CONSTRAINT conversation_sessions_tts_ms CHECK (tts_ms_total >= 0),
    total_ms_total  bigint      NOT NULL DEFAULT 0 CONSTRAINT conversation_sessions_total_ms CHECK (total_ms_total >= 0),
    metadata        jsonb       NOT NULL DEFAULT '{}' CONSTRAINT conversation_sessions_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversation_sessions_ended CHECK ((status = 'ended') = (ended_at IS NOT NULL) AND (ended_at IS NULL OR ended_at >= started_at))
);
COMMENT ON TABLE conversation_sessions IS 'One real-time conversation with a digital twin, with running counters.';
-- list_for_user and statistics(user_id, since=...) read a user's sessions by start time.
CREATE INDEX conversation_sessions_user_started_idx ON conversation_sessions (user_id, started_at DESC);
CREATE INDEX conversation_sessions_voice_model_idx ON conversation_sessions (voice_model_id) WHERE voice_model_id IS NOT NULL;
CREATE INDEX conversation_sessions_face_model_idx ON conversation_sessions (face_model_id) WHERE face_model_id IS NOT NULL;

CREATE TABLE conversation_turns (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id   uuid        NOT NULL REFERENCES conversation_sessions (id) ON DELETE CASCADE,
    turn_number  integer     NOT NULL CONSTRAINT conversation_turns_number CHECK (turn_number >= 1),
    role         text        NOT NULL CONSTRAINT conversation_turns_role CHECK (role IN ('user', 'assistant', 'system')),
    content      text        NOT NULL CONSTRAINT conversation_turns_content_length CHECK (length(content) <= 100000),
    asr_ms       integer     CONSTRAINT conversation_turns_asr_ms CHECK (asr_ms BETWEEN 0 AND 3600000),
    llm_ms       integer     CONSTRAINT conversation_turns_llm_ms CHECK (llm_ms BETWEEN 0 AND 3600000),
    tts_ms       integer     CONSTRAINT conversation_turns_tts_ms CHECK (tts_ms BETWEEN 0 AND 3600000),
    total_ms     integer     CONSTRAINT conversation_turns_total_ms CHECK (total_ms BETWEEN 0 AND 3600000),
    tokens_in    integer     CONSTRAINT conversation_turns_tokens_in CHECK (tokens_in BETWEEN 0 AND 10000000),
    tokens_out   integer     CONSTRAINT conversation_turns_tokens_out CHECK (tokens_out BETWEEN 0 AND 10000000),
    metadata     jsonb       NOT NULL DEFAULT '{}' CONSTRAINT conversation_turns_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Turn numbers are unique per session; add_turn also makes them gap-free.
    CONSTRAINT conversation_turns_session_number_key UNIQUE (session_id, turn_number)
);
COMMENT ON TABLE conversation_turns IS 'Exchanges of a session, numbered 1..n without gaps, with per-stage latencies.';

CREATE TABLE knowledge_documents (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         text        NOT NULL CONSTRAINT knowledge_documents_title_length CHECK (length(btrim(title)) BETWEEN 1 AND 500),
    content       text        NOT NULL CONSTRAINT knowledge_documents_content_length CHECK (length(content) <= 5000000),
    source        text        CONSTRAINT knowledge_documents_source_length CHECK (length(source) <= 2000),
    mime_type     text        NOT NULL DEFAULT 'text/plain'
        CONSTRAINT knowledge_documents_mime_type CHECK (mime_type ~ '^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$' AND length(mime_type) <= 255),
    status        text        NOT NULL DEFAULT 'pending'
        CONSTRAINT knowledge_documents_status CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    error         text        CONSTRAINT knowledge_documents_error_length CHECK (length(error) <= 10000),
    chunk_count   integer     CONSTRAINT knowledge_documents_chunk_count CHECK (chunk_count >= 0),
    size_bytes    integer     GENERATED ALWAYS AS (octet_length(content)) STORED,
    metadata      jsonb       NOT NULL DEFAULT '{}' CONSTRAINT knowledge_documents_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    -- Full-text search vector: title weighs more than body. The body is cut at 200k characters
    -- because a tsvector is limited to 1 MB.
    search_vector tsvector    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title), 'A')
        || setweight(to_tsvector('english'::regconfig, left(content, 200000)), 'B')
    ) STORED,
    processed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
COMMENT ON TABLE knowledge_documents IS 'Per-user knowledge base; full-text searchable; processing lifecycle pending→processing→ready|failed.';
CREATE INDEX knowledge_documents_search_idx ON knowledge_documents USING gin (search_vector);
CREATE INDEX knowledge_documents_user_created_idx ON knowledge_documents (user_id, created_at DESC);
CREATE INDEX knowledge_documents_user_status_idx ON knowledge_documents (user_id, status) WHERE deleted_at IS NULL;
