-- The account and certificate lifecycle: people who enrol themselves, their one-time links and codes,
-- consents, orders and payments, identity checks, the notification outbox and operators.

-- A person enrolled through the lifecycle API logs in with the e-mail address as username. Until the
-- account is activated its password_hash is empty, which no password verifies against.
ALTER TABLE users ADD COLUMN given_name TEXT;
ALTER TABLE users ADD COLUMN surname TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN phone TEXT;
ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE users ADD COLUMN login_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN login_locked_until BIGINT;
-- Postponed authenticator pairing: 'until' (totp_remind_at), 'next_login' or 'never'.
ALTER TABLE users ADD COLUMN totp_postpone TEXT;
ALTER TABLE users ADD COLUMN totp_remind_at BIGINT;
CREATE UNIQUE INDEX users_email ON users(email);

-- An authenticator being paired: it becomes the TOTP factor once confirmed with one code.
CREATE TABLE totp_pairings (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id),
    secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

-- One-time links and codes, stored as digests. A code sent for a link names it as its parent.
CREATE TABLE verifications (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    purpose TEXT NOT NULL,
    target TEXT NOT NULL,
    secret_digest TEXT NOT NULL,
    parent_id TEXT,
    payload TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX verifications_digest ON verifications(secret_digest);
CREATE INDEX verifications_user ON verifications(user_id, purpose);
CREATE INDEX verifications_target ON verifications(target, created_at);

CREATE TABLE consents (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    document TEXT NOT NULL,
    version TEXT NOT NULL,
    accepted_at BIGINT NOT NULL
);
CREATE INDEX consents_user ON consents(user_id);

-- An order of a package: issuance, rekey (credential_id is the credential renewed) or reissue.
CREATE TABLE orders (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    package_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    validity_years INTEGER NOT NULL,
    transactions INTEGER NOT NULL,
    net_cents BIGINT NOT NULL,
    vat_cents BIGINT NOT NULL,
    gross_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    invoice TEXT NOT NULL,
    invoice_number TEXT,
    payment_ref TEXT UNIQUE,
    credential_id TEXT,
    new_credential_id TEXT,
    personal_data_confirmed BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    paid_at BIGINT,
    fulfilled_at BIGINT
);
CREATE INDEX orders_user ON orders(user_id);

-- Webhook events already handled (provider:event_id), so that a redelivery changes nothing.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY NOT NULL,
    subject_id TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE identity_checks (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    order_id TEXT NOT NULL REFERENCES orders(id),
    status TEXT NOT NULL,
    reasons TEXT,
    decided_by TEXT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX identity_checks_order ON identity_checks(order_id);

-- A copy of the identity document uploaded for a rekey.
CREATE TABLE identity_documents (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    order_id TEXT NOT NULL REFERENCES orders(id),
    content_type TEXT NOT NULL,
    data BYTEA NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL
);

-- The transactional outbox: written in the transaction of the change it tells about, delivered after.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    user_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox(recipient);

CREATE TABLE operators (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    key_digest TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Rekey notices already sent: each (credential, days before expiry) once.
CREATE TABLE rekey_notices (
    credential_id TEXT NOT NULL REFERENCES credentials(id),
    days_before INTEGER NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (credential_id, days_before)
);

-- The package's transactions are the credential's quota (NULL: no limit); spent by a conditional update.
ALTER TABLE credentials ADD COLUMN quota_total INTEGER;
ALTER TABLE credentials ADD COLUMN quota_used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN order_id TEXT;
ALTER TABLE credentials ADD COLUMN replaced_by TEXT;
ALTER TABLE credentials ADD COLUMN revocation_reason TEXT;
