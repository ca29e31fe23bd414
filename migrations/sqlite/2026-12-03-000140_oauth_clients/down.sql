ALTER TABLE sads DROP COLUMN client_id;
DROP INDEX access_tokens_by_client;
ALTER TABLE access_tokens DROP COLUMN client_id;
DROP TABLE oauth_assertions;
DROP TABLE oauth_clients;
