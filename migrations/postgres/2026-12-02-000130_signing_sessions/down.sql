DROP TABLE signing_session_documents;
DROP TABLE signing_sessions;
