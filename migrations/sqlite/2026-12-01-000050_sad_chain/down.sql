ALTER TABLE sads DROP COLUMN chain_expires_at;
