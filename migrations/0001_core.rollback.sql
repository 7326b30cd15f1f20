DROP TABLE IF EXISTS knowledge_documents;
DROP TABLE IF EXISTS conversation_turns;
DROP TABLE IF EXISTS conversation_sessions;
DROP TABLE IF EXISTS face_models;
DROP TABLE IF EXISTS voice_models;
DROP TABLE IF EXISTS users;
