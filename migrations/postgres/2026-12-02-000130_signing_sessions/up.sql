-- A person's document signing session (the portal flow, /api/v1/signing-sessions): the files to sign
-- with one code, then the signed files until the session expires and the scheduler deletes it.
-- state: 'ready' (waiting for the code), 'signing' (claimed by one sign request: no other may sign it
-- until it ends, or until claimed_at is long past after a crash), 'signed'.
-- expires_at: Unix seconds; lifetime from creation while ready, then from signing.
CREATE TABLE signing_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    claimed_at BIGINT,
    signed_at BIGINT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX signing_sessions_by_user ON signing_sessions (user_id);
CREATE INDEX signing_sessions_by_expiry ON signing_sessions (expires_at);

-- The session's files, in the order sent. output: 'pdf' (signed inside) or 'p7s' (detached CAdES);
-- level: the AdES conformance level ('Ades-B-B', ...); digest: the file's digest with the signature
-- algorithm's hash, what the person's code authorises; content: the file as sent; signed: the signed
-- PDF or the .p7s, once signed. visible_*: a visible PDF signature's page (from 1) and rectangle in
-- points; reason and location: what a PDF signature says.
CREATE TABLE signing_session_documents (
    session_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    output TEXT NOT NULL,
    level TEXT NOT NULL,
    digest BYTEA NOT NULL,
    content BYTEA NOT NULL,
    signed BYTEA,
    visible_page INTEGER,
    visible_x1 DOUBLE PRECISION,
    visible_y1 DOUBLE PRECISION,
    visible_x2 DOUBLE PRECISION,
    visible_y2 DOUBLE PRECISION,
    reason TEXT,
    location TEXT,
    PRIMARY KEY (session_id, position)
);
