ALTER TABLE credentials DROP COLUMN revocation_code;
