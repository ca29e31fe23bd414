-- TOTP seeds are sealed in the HSM (AES-256-GCM, bound to the user id). Rows written before this
-- migration hold the seed in clear: `secret_seal` tells which, and the server seals every 'clear' row
-- once at start (SQL cannot call the HSM). New rows are always written sealed.
ALTER TABLE totp_factors ADD COLUMN secret_seal TEXT NOT NULL DEFAULT 'clear';
ALTER TABLE totp_pairings ADD COLUMN secret_seal TEXT NOT NULL DEFAULT 'clear';
