ALTER TABLE operators DROP COLUMN role;
