-- The request that wrote an audit record (X-Request-Id), so an operator can join the trail with the logs.
-- Records written before this column, and by commands and background jobs, have none.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
