-- Applications registered by operators to act for people through the OAuth2 authorisation server
-- (/oauth2/token, /oauth2/revoke; `rssp oauth-client create`, POST /api/admin/v1/oauth-clients).
-- id: the client_id. client_type: 'public' (no secret; must use PKCE) or 'confidential' (authenticates
-- with its secret). secret_digest: SHA-256 of a confidential client's secret (the secret is shown once).
-- redirect_uris: a JSON array, matched exactly (a loopback one on any port). scopes: space-separated,
-- 'service' and/or 'credential'. account_user_id: the one account a confidential client acts for with
-- the client_credentials grant (an organisation's e-seal signer); none for other clients.
-- disabled_at: Unix seconds; a disabled client authenticates no more and its tokens are revoked.
CREATE TABLE oauth_clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    client_type TEXT NOT NULL,
    secret_digest TEXT,
    redirect_uris TEXT NOT NULL,
    scopes TEXT NOT NULL,
    account_user_id TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

-- The client an OAuth token was issued to (none for auth/login tokens and portal sessions): disabling a
-- client revokes its tokens in one statement, and a client may revoke only its own tokens.
ALTER TABLE access_tokens ADD COLUMN client_id TEXT;
CREATE INDEX access_tokens_by_client ON access_tokens (client_id);
