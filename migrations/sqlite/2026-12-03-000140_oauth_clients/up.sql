-- Applications registered by operators to act for people through the OAuth2 authorisation server
-- (/oauth2/token, /oauth2/revoke; `rssp oauth-client create`, POST /api/admin/v1/oauth-clients).
-- id: the client_id. client_type: 'public' (no secret; must use PKCE) or 'confidential', which
-- authenticates with its secret (secret_digest: SHA-256 of it, shown once) or with assertions signed by
-- its own key (private_key_jwt, RFC 7523; jwks: its public keys, an RFC 7517 JWK Set).
-- redirect_uris: a JSON array, matched exactly (a loopback one on any port). scopes: space-separated,
-- 'service' and/or 'credential'. account_user_id: the one account a confidential client acts for with
-- the client_credentials grant (an organisation's e-seal signer); none for other clients.
-- last_used_at: Unix seconds of the last token issued; issuing updates the row only while disabled_at is
-- empty, so a token is never issued after the client was disabled (whose revocation of its tokens would
-- then miss it). disabled_at: Unix seconds; a disabled client authenticates no more.
CREATE TABLE oauth_clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    client_type TEXT NOT NULL CHECK (client_type IN ('public', 'confidential')),
    secret_digest TEXT,
    jwks TEXT,
    redirect_uris TEXT NOT NULL,
    scopes TEXT NOT NULL,
    account_user_id TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    disabled_at BIGINT,
    CHECK ((client_type = 'public' AND secret_digest IS NULL AND jwks IS NULL)
        OR (client_type = 'confidential' AND (secret_digest IS NULL) <> (jwks IS NULL)))
);

-- The ids (jti) of the client assertions accepted, kept until they expire, so none is accepted twice.
CREATE TABLE oauth_assertions (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- The client an OAuth token was issued to (none for auth/login tokens and portal sessions): disabling a
-- client revokes its tokens in one statement, and a client may revoke only its own tokens.
ALTER TABLE access_tokens ADD COLUMN client_id TEXT;
CREATE INDEX access_tokens_by_client ON access_tokens (client_id);

-- The client whose token authorised a SAD (none for a person's own login): only a token of that same
-- client signs with it (a SAD is bound to the user, the credential and the client).
ALTER TABLE sads ADD COLUMN client_id TEXT;
