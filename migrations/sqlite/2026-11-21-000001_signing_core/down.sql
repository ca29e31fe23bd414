DROP TABLE audit_head;
DROP TABLE audit_log;
DROP TABLE ca_keys;
DROP TABLE sads;
DROP TABLE access_tokens;
DROP TABLE credentials;
DROP TABLE totp_factors;
DROP TABLE users;
