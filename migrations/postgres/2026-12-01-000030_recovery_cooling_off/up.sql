-- Sole control after account recovery (issue 7, defects 4 and 5).

-- An outbox message that carries a code or a link. In production mode its body is wiped in the update
-- that marks it sent (or given up), and the admin API never shows it.
ALTER TABLE outbox ADD COLUMN secret BOOLEAN NOT NULL DEFAULT FALSE;

-- When the password was last recovered, the phone number last changed or an authenticator reset last
-- cancelled: an authenticator reset within security.recovery_cooling_off_secs of it needs a new
-- identity verification before the new authenticator may authorise signatures.
ALTER TABLE users ADD COLUMN recovered_at BIGINT;

-- Every authenticator reset. Its id is also the id of its identity check (the provider's session, the
-- operator's decision) when one is needed. status: not_required, pending_identity, verified, rejected,
-- cancelled.
CREATE TABLE authenticator_resets (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    status TEXT NOT NULL,
    reasons TEXT,
    decided_by TEXT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX authenticator_resets_user ON authenticator_resets(user_id, created_at);
CREATE INDEX authenticator_resets_status ON authenticator_resets(status);
