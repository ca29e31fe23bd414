DROP TABLE authenticator_resets;
ALTER TABLE users DROP COLUMN recovered_at;
ALTER TABLE outbox DROP COLUMN secret;
