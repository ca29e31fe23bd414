-- Rekey goes through an identity decision (issue 7): the order keeps the names the person asks for,
-- and each submission is an identity check of kind 'rekey' with a snapshot of what was submitted.
ALTER TABLE orders ADD COLUMN requested_given_name TEXT;
ALTER TABLE orders ADD COLUMN requested_surname TEXT;
ALTER TABLE orders ADD COLUMN requested_document_id TEXT;
ALTER TABLE identity_checks ADD COLUMN kind TEXT NOT NULL DEFAULT 'identity';
ALTER TABLE identity_checks ADD COLUMN given_name TEXT;
ALTER TABLE identity_checks ADD COLUMN surname TEXT;
ALTER TABLE identity_checks ADD COLUMN document_id TEXT;
ALTER TABLE identity_checks ADD COLUMN key_type TEXT;
