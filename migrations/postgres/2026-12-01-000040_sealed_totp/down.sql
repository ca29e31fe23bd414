-- Sealed seeds cannot be opened by SQL: going down drops the factors and pairings that are sealed
-- (their owners pair their authenticator again), and keeps the clear ones.
DELETE FROM totp_factors WHERE secret_seal <> 'clear';
DELETE FROM totp_pairings WHERE secret_seal <> 'clear';
ALTER TABLE totp_factors DROP COLUMN secret_seal;
ALTER TABLE totp_pairings DROP COLUMN secret_seal;
