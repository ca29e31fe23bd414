CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The person's authenticator (TOTP). last_step only moves forward: a code is accepted once.
CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id),
    secret BLOB NOT NULL,
    last_step BIGINT,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT
);

CREATE TABLE credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    key_kind TEXT NOT NULL,
    key_id TEXT NOT NULL,
    certificate BLOB NOT NULL,
    serial_hex TEXT NOT NULL,
    not_after BIGINT NOT NULL,
    pin_hash TEXT,
    multisign INTEGER NOT NULL,
    status TEXT NOT NULL,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX credentials_user ON credentials(user_id);

-- Bearer tokens from auth/login, stored as SHA-256 digests. An access token minted with a refresh
-- token names it, so revoking the refresh token revokes its access tokens too.
CREATE TABLE access_tokens (
    digest TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    kind TEXT NOT NULL,
    refresh_digest TEXT,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX access_tokens_refresh ON access_tokens(refresh_digest);

-- Signature activation data. used counts signatures made; the budget is spent by a conditional update.
CREATE TABLE sads (
    digest TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    credential_id TEXT NOT NULL REFERENCES credentials(id),
    hashes TEXT NOT NULL,
    num_signatures INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);

-- The CA's own keys (in the HSM) and certificates: 'root' and 'issuing'.
CREATE TABLE ca_keys (
    name TEXT PRIMARY KEY NOT NULL,
    key_kind TEXT NOT NULL,
    key_id TEXT NOT NULL,
    certificate BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Append-only audit trail; each record carries the hash of the one before it.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    user_id TEXT,
    credential_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- One row: the end of the chain. Updating it serialises appends on every backend.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
