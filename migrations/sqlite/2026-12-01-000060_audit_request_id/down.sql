ALTER TABLE audit_log DROP COLUMN request_id;
