ALTER TABLE identity_checks DROP COLUMN key_type;
ALTER TABLE identity_checks DROP COLUMN document_id;
ALTER TABLE identity_checks DROP COLUMN surname;
ALTER TABLE identity_checks DROP COLUMN given_name;
ALTER TABLE identity_checks DROP COLUMN kind;
ALTER TABLE orders DROP COLUMN requested_document_id;
ALTER TABLE orders DROP COLUMN requested_surname;
ALTER TABLE orders DROP COLUMN requested_given_name;
