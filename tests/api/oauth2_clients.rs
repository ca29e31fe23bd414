//! The OAuth2 authorisation server's clients and the client credentials grant: an operator registers an
//! application (admin API or CLI), a confidential client bound to one account gets `service` tokens for
//! it at `/oauth2/token` and signs through both CSC dialects with them, revokes them at `/oauth2/revoke`
//! (and `/revoke`); everything else is refused with the OAuth error that says why, and issues nothing.

use diesel::RunQueryDsl;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::common::binary::rssp;
use crate::common::*;
use rssp::domain::KeyKind;

/// How a test client authenticates.
enum ClientAuth<'a> {
    Basic(&'a str, &'a str),
    None,
}

/// A form POST to `path` with `form` in the body and `query` in the URL; (status, headers, body).
async fn form_post(
    server: &TestServer,
    path: &str,
    auth: ClientAuth<'_>,
    form: &[(&str, &str)],
    query: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let mut request = server.http.post(format!("{}{path}", server.url)).query(query).form(form);
    if let ClientAuth::Basic(id, secret) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Registers a client through the admin API; (client_id, client_secret).
async fn register(server: &TestServer, body: Value) -> (String, Option<String>) {
    let (status, created) = server.post("/api/admin/v1/oauth-clients", Some(&server.operator_key()), body).await;
    assert_eq!(status, 201, "{created}");
    (created["client_id"].as_str().unwrap().to_string(), created["client_secret"].as_str().map(str::to_string))
}

/// A confidential client acting for `signer`'s account; (client_id, client_secret).
async fn seal_client(server: &TestServer, signer: &Signer) -> (String, String) {
    let (id, secret) = register(
        server,
        json!({"name": "Seal signer", "type": "confidential", "scopes": ["service"], "account_user_id": signer.user_id}),
    )
    .await;
    (id, secret.expect("a confidential client gets a secret"))
}

async fn client_token(server: &TestServer, id: &str, secret: &str) -> String {
    let (status, headers, body) =
        form_post(server, "/oauth2/token", ClientAuth::Basic(id, secret), &[("grant_type", "client_credentials")], &[])
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!((body["token_type"].as_str(), body["scope"].as_str()), (Some("Bearer"), Some("service")));
    assert!(body.get("refresh_token").is_none(), "client_credentials gives no refresh token (RFC 6749 §4.4.3)");
    body["access_token"].as_str().unwrap().to_string()
}

async fn lists_credential(server: &TestServer, version: &str, token: &str, credential: &str) -> (u16, bool) {
    let (status, body) = server.post(&format!("/csc/{version}/credentials/list"), Some(token), json!({})).await;
    let ids = body["credentialIDs"].as_array().cloned().unwrap_or_default();
    (status, ids.iter().any(|id| id == credential))
}

/// OAuth tokens issued (rows of access_tokens with a client).
fn oauth_tokens(server: &TestServer) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = server.services().conn().unwrap();
    let counted: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM access_tokens WHERE client_id IS NOT NULL")
        .get_result(&mut *conn)
        .unwrap();
    counted.n
}

#[actix_web::test]
async fn a_seal_client_signs_for_its_account_in_both_dialects_until_its_token_is_revoked() {
    let server = TestServer::start().await;
    let alice = server.provision("seal-alice", KeyKind::EcP256, 10, None).await;
    let bob = server.provision("seal-bob", KeyKind::EcP256, 10, None).await;
    let (id, secret) = seal_client(&server, &alice).await;

    let token = client_token(&server, &id, &secret).await;
    assert_eq!(lists_credential(&server, "v1", &token, &alice.credential_id).await, (200, true));
    assert_eq!(lists_credential(&server, "v2", &token, &alice.credential_id).await, (200, true));
    assert_eq!(lists_credential(&server, "v1", &token, &bob.credential_id).await, (200, false), "only its account's");
    // A whole SCAL2 signature: the code still comes from the account's authenticator.
    let hashes = digests(2, "seal");
    let sad = server.authorize_v1(&token, &alice, &hashes, 2).await;
    let (status, body) = sign(&server, &token, &alice.credential_id, &sad, &hashes).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["signatures"].as_array().unwrap().len(), 2);
    // Another person's credential is not reachable with it.
    let (status, body) =
        server.post("/csc/v2/credentials/info", Some(&token), json!({"credentialID": bob.credential_id})).await;
    assert_eq!(status, 400, "{body}");
    // Nor is the account's lifecycle API: a service token is not a portal session.
    let (status, _) = server.get("/api/v1/me", Some(&token)).await;
    assert_eq!(status, 401);

    // client_secret_post, and (a sloppy client) the parameters in the URL's query of the POST, with the
    // secret in the Basic header: a secret or a token in the URL is refused (RFC 6749 §2.3.1).
    let (status, _, body) = form_post(
        &server,
        "/oauth2/token",
        ClientAuth::None,
        &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret), ("scope", "service")],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let posted = body["access_token"].as_str().unwrap().to_string();
    let (status, _, body) = form_post(
        &server,
        "/oauth2/token",
        ClientAuth::Basic(&id, &secret),
        &[],
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = form_post(
        &server,
        "/oauth2/token",
        ClientAuth::None,
        &[("grant_type", "client_credentials"), ("client_id", &id)],
        &[("client_secret", &secret)],
    )
    .await;
    assert_error(status, &body, 400, "invalid_request", "must not be sent in the URL");

    // CSC's userID: a client's token (oauth2client is not user-specific) may name its account, no other.
    for (version, user, want) in
        [("v1", &alice.user_id, 200), ("v2", &alice.user_id, 200), ("v1", &bob.user_id, 400), ("v2", &bob.user_id, 400)]
    {
        let (status, body) =
            server.post(&format!("/csc/{version}/credentials/list"), Some(&token), json!({"userID": user})).await;
        assert_eq!(status, want, "{version} {user}: {body}");
    }
    let alices_login = server.login("v1", &alice).await;
    let (status, body) =
        server.post("/csc/v1/credentials/list", Some(&alices_login), json!({"userID": alice.user_id})).await;
    assert_error(status, &body, 400, "invalid_request", "userID parameter MUST be null");

    // A SAD is bound to the client whose token authorised it: the person's own SAD does not sign with the
    // client's token, nor the client's with the person's.
    let hashes = digests(1, "bound-sad");
    let persons_sad = server.authorize_v1(&alices_login, &alice, &hashes, 1).await;
    let (status, body) = sign(&server, &token, &alice.credential_id, &persons_sad, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "SAD");
    server.clock.advance(30);
    let clients_sad = server.authorize_v1(&token, &alice, &hashes, 1).await;
    let (status, body) = sign(&server, &alices_login, &alice.credential_id, &clients_sad, &hashes).await;
    assert_error(status, &body, 400, "invalid_request", "SAD");
    let (status, body) = sign(&server, &token, &alice.credential_id, &clients_sad, &hashes).await;
    assert_eq!(status, 200, "{body}");

    // The client revokes only its own tokens: not the person's login, through either endpoint.
    let (status, _, body) =
        form_post(&server, "/oauth2/revoke", ClientAuth::Basic(&id, &secret), &[("token", &alices_login)], &[]).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = server.post("/csc/v1/auth/revoke", Some(&token), json!({"token": alices_login})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(lists_credential(&server, "v1", &alices_login, &alice.credential_id).await, (200, true));

    // Another client cannot revoke this client's token: answered alike (RFC 7009 §2.2), nothing revoked.
    let (other, other_secret) = seal_client(&server, &bob).await;
    let (status, _, body) =
        form_post(&server, "/oauth2/revoke", ClientAuth::Basic(&other, &other_secret), &[("token", &token)], &[]).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(lists_credential(&server, "v1", &token, &alice.credential_id).await, (200, true));
    // Revocation needs the client's own authentication.
    let (status, headers, body) =
        form_post(&server, "/oauth2/revoke", ClientAuth::Basic(&id, "wrong"), &[("token", &token)], &[]).await;
    assert_error(status, &body, 401, "invalid_client", "client_secret");
    assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    assert_eq!(lists_credential(&server, "v1", &token, &alice.credential_id).await, (200, true));

    // Its own client revokes it, at /oauth2/revoke and at the /revoke alias.
    let (status, _, body) = form_post(
        &server,
        "/oauth2/revoke",
        ClientAuth::Basic(&id, &secret),
        &[("token", &token), ("token_type_hint", "access_token")],
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = server.post("/csc/v1/credentials/list", Some(&token), json!({})).await;
    assert_eq!(status, 401);
    let (status, _, body) = form_post(
        &server,
        "/revoke",
        ClientAuth::None,
        &[("token", &posted), ("client_id", &id), ("client_secret", &secret)],
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = server.post("/csc/v2/credentials/list", Some(&posted), json!({})).await;
    assert_eq!(status, 401);

    let (_, audit) = server.get("/api/admin/v1/audit?limit=500", Some(&server.operator_key())).await;
    let records = audit["records"].as_array().unwrap();
    let count =
        |event: &str, outcome: &str| records.iter().filter(|r| r["event"] == event && r["outcome"] == outcome).count();
    assert_eq!(count("oauth.client_create", "success"), 2);
    let created = records.iter().find(|r| r["event"] == "oauth.client_create").unwrap();
    assert!(created["detail"].as_str().unwrap().contains("by operator "), "{created}");
    assert_eq!(count("oauth.token", "success"), 3);
    assert_eq!(count("oauth.token", "refused"), 0, "the secret in the URL was refused before the client was judged");
    assert_eq!(count("oauth.revoke", "success"), 2);
    assert_eq!(count("oauth.revoke", "refused"), 3, "the other client's try, the wrong secret, the person's token");
    // What the client did is recorded as done through it; what the person did, not.
    let through = |event: &str| {
        records
            .iter()
            .filter(|r| r["event"] == event && r["outcome"] == "success")
            .map(|r| r["detail"].as_str().unwrap().contains(&format!("through OAuth client {id}")))
            .collect::<Vec<_>>()
    };
    assert_eq!(through("credentials.authorize"), [true, false, true], "client, person, client");
    assert_eq!(through("signatures.signHash"), [true, true]);
}

#[actix_web::test]
async fn the_token_endpoint_refuses_with_the_right_oauth_error_and_issues_nothing() {
    let server = TestServer::start().await;
    let alice = server.provision("refused-alice", KeyKind::EcP256, 10, None).await;
    let (id, secret) = seal_client(&server, &alice).await;
    let (public, none) = register(
        &server,
        json!({"name": "Desktop app", "type": "public", "scopes": ["service", "credential"],
               "redirect_uris": ["http://127.0.0.1/callback"]}),
    )
    .await;
    assert_eq!(none, None, "a public client has no secret");
    let (unbound, unbound_secret) = register(
        &server,
        json!({"name": "Web app", "type": "confidential", "scopes": ["service"],
               "redirect_uris": ["https://app.example/cb"]}),
    )
    .await;
    let unbound_secret = unbound_secret.unwrap();
    let cc = ("grant_type", "client_credentials");

    struct Case<'a> {
        what: &'a str,
        auth: ClientAuth<'a>,
        form: Vec<(&'a str, &'a str)>,
        query: Vec<(&'a str, &'a str)>,
        status: u16,
        error: &'a str,
        text: &'a str,
    }
    let basic = || ClientAuth::Basic(&id, &secret);
    let many: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    let cases = vec![
        Case {
            what: "no grant_type",
            auth: basic(),
            form: vec![],
            query: vec![],
            status: 400,
            error: "invalid_request",
            text: "grant_type",
        },
        Case {
            what: "an empty grant_type",
            auth: basic(),
            form: vec![("grant_type", "")],
            query: vec![],
            status: 400,
            error: "invalid_request",
            text: "Missing parameter grant_type",
        },
        Case {
            what: "a grant not offered",
            auth: basic(),
            form: vec![("grant_type", "password")],
            query: vec![],
            status: 400,
            error: "unsupported_grant_type",
            text: "grant_type",
        },
        Case {
            what: "grant_type twice",
            auth: basic(),
            form: vec![cc],
            query: vec![cc],
            status: 400,
            error: "invalid_request",
            text: "more than once",
        },
        Case {
            what: "a wrong secret",
            auth: ClientAuth::Basic(&id, "rsspcs_wrong"),
            form: vec![cc],
            query: vec![],
            status: 401,
            error: "invalid_client",
            text: "client_secret",
        },
        Case {
            what: "an unknown client",
            auth: ClientAuth::Basic("no-such-client", &secret),
            form: vec![cc],
            query: vec![],
            status: 401,
            error: "invalid_client",
            text: "client_id",
        },
        Case {
            what: "no client at all",
            auth: ClientAuth::None,
            form: vec![cc],
            query: vec![],
            status: 400,
            error: "invalid_request",
            text: "client_id",
        },
        Case {
            what: "two ways of authentication",
            auth: basic(),
            form: vec![cc, ("client_secret", &secret)],
            query: vec![],
            status: 400,
            error: "invalid_request",
            text: "one way",
        },
        Case {
            what: "client_id naming another client than Basic",
            auth: basic(),
            form: vec![cc, ("client_id", &public)],
            query: vec![],
            status: 401,
            error: "invalid_client",
            text: "differs",
        },
        Case {
            what: "a confidential client without its secret",
            auth: ClientAuth::None,
            form: vec![cc, ("client_id", &id)],
            query: vec![],
            status: 401,
            error: "invalid_client",
            text: "secret",
        },
        Case {
            what: "an assertion for a client with a secret",
            auth: ClientAuth::None,
            form: vec![
                cc,
                ("client_id", &id),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", "e30.e30.sig"),
            ],
            query: vec![],
            status: 401,
            error: "invalid_client",
            text: "with its secret",
        },
        Case {
            what: "a NUL in client_id",
            auth: ClientAuth::None,
            form: vec![cc, ("client_id", "a\u{0}b"), ("client_secret", &secret)],
            query: vec![],
            status: 401,
            error: "invalid_client",
            text: "client_id",
        },
        Case {
            what: "a secret in the URL",
            auth: ClientAuth::None,
            form: vec![cc, ("client_id", &id)],
            query: vec![("client_secret", &secret)],
            status: 400,
            error: "invalid_request",
            text: "URL",
        },
        Case {
            what: "too many parameters",
            auth: basic(),
            form: many.iter().map(|n| (n.as_str(), "x")).collect(),
            query: vec![],
            status: 400,
            error: "invalid_request",
            text: "Too many",
        },
        Case {
            what: "the credential scope",
            auth: basic(),
            form: vec![cc, ("scope", "credential")],
            query: vec![],
            status: 400,
            error: "invalid_scope",
            text: "service scope only",
        },
        Case {
            what: "both scopes",
            auth: basic(),
            form: vec![cc, ("scope", "service credential")],
            query: vec![],
            status: 400,
            error: "invalid_scope",
            text: "not both",
        },
        Case {
            what: "an unknown scope",
            auth: basic(),
            form: vec![cc, ("scope", "openid")],
            query: vec![],
            status: 400,
            error: "invalid_scope",
            text: "openid",
        },
        Case {
            what: "a public client",
            auth: ClientAuth::None,
            form: vec![cc, ("client_id", &public)],
            query: vec![],
            status: 400,
            error: "unauthorized_client",
            text: "acts for no account",
        },
        Case {
            what: "a public client sending a secret",
            auth: ClientAuth::Basic(&public, "anything"),
            form: vec![cc],
            query: vec![],
            status: 401,
            error: "invalid_client",
            text: "public",
        },
        Case {
            what: "a confidential client bound to no account",
            auth: ClientAuth::Basic(&unbound, &unbound_secret),
            form: vec![cc],
            query: vec![],
            status: 400,
            error: "unauthorized_client",
            text: "acts for no account",
        },
    ];
    for case in cases {
        let (status, headers, body) = form_post(&server, "/oauth2/token", case.auth, &case.form, &case.query).await;
        assert_eq!(status, case.status, "{}: {body}", case.what);
        assert_eq!(body["error"], case.error, "{}: {body}", case.what);
        assert!(body["error_description"].as_str().unwrap().contains(case.text), "{}: {body}", case.what);
        if status == 401 {
            assert!(headers["www-authenticate"].to_str().unwrap().starts_with("Basic"), "{}", case.what);
        }
    }
    // A bearer token is not client authentication; a JSON body is not a form.
    let response =
        server.http.post(format!("{}/oauth2/token", server.url)).bearer_auth(&secret).form(&[cc]).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let (status, body) = server.post("/oauth2/token", None, json!({"grant_type": "client_credentials"})).await;
    assert_error(status, &body, 400, "invalid_request", "x-www-form-urlencoded");
    // Basic headers that do not hold an id and a secret.
    for header in ["Basic !!!", "Basic bm8tY29sb24=", "Basic //79", "Basic OnNlY3JldA==", "Digest abc"] {
        let response = server
            .http
            .post(format!("{}/oauth2/token", server.url))
            .header("authorization", header)
            .form(&[cc])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_error(status, &body, 401, "invalid_client", "");
    }
    // A body over the limit.
    let (status, _, body) =
        form_post(&server, "/oauth2/token", basic(), &[cc, ("scope", &"s".repeat(20_000))], &[]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(oauth_tokens(&server), 0, "no refusal issued a token");
    // A form with a charset, and Basic credentials form-encoded as RFC 6749 §2.3.1 has them (rssp's ids and
    // secrets need no encoding, so the encoded and plain forms are the same client).
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", id.replace('-', "%2D"), secret));
    let response = server
        .http
        .post(format!("{}/oauth2/token", server.url))
        .header("authorization", format!("Basic {encoded}"))
        .header("content-type", "application/x-www-form-urlencoded; charset=UTF-8")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // The account it acts for must be active.
    let set_status = |status: &str| {
        let mut conn = server.services().conn().unwrap();
        diesel::sql_query(format!("UPDATE users SET status = '{status}' WHERE id = '{}'", alice.user_id))
            .execute(&mut *conn)
            .unwrap();
    };
    set_status("invited");
    let (status, _, body) = form_post(&server, "/oauth2/token", basic(), &[cc], &[]).await;
    assert_error(status, &body, 400, "invalid_grant", "not active");
    assert_eq!(oauth_tokens(&server), 1, "the refusal issued no token");

    set_status("active");
    client_token(&server, &id, &secret).await;
    assert_eq!(oauth_tokens(&server), 2);
}

#[actix_web::test]
async fn a_disabled_client_gets_no_token_and_its_tokens_stop_working() {
    let server = TestServer::start().await;
    let alice = server.provision("disabled-alice", KeyKind::EcP256, 10, None).await;
    let (id, secret) = seal_client(&server, &alice).await;
    let token = client_token(&server, &id, &secret).await;
    assert_eq!(lists_credential(&server, "v1", &token, &alice.credential_id).await, (200, true));

    let key = server.operator_key();
    // Only an operator disables.
    let (status, _) = server.post(&format!("/api/admin/v1/oauth-clients/{id}/disable"), Some(&token), json!({})).await;
    assert_eq!(status, 401);
    let (status, body) = server.post(&format!("/api/admin/v1/oauth-clients/{id}/disable"), Some(&key), json!({})).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = server.post("/csc/v1/credentials/list", Some(&token), json!({})).await;
    assert_eq!(status, 401, "its tokens were revoked with it");
    let (status, _, body) = form_post(
        &server,
        "/oauth2/token",
        ClientAuth::Basic(&id, &secret),
        &[("grant_type", "client_credentials")],
        &[],
    )
    .await;
    assert_error(status, &body, 401, "invalid_client", "disabled");
    let (status, body) = server.post(&format!("/api/admin/v1/oauth-clients/{id}/disable"), Some(&key), json!({})).await;
    assert_error(status, &body, 404, "not_found", "no enabled OAuth client");

    let (status, listed) = server.get("/api/admin/v1/oauth-clients", Some(&key)).await;
    assert_eq!(status, 200, "{listed}");
    let client = &listed["clients"][0];
    assert_eq!((client["client_id"].as_str(), client["type"].as_str()), (Some(id.as_str()), Some("confidential")));
    assert!(client["disabled_at"].is_string(), "{client}");
    assert_eq!(client["account_user_id"], alice.user_id.as_str());
    assert!(
        client.get("client_secret").is_none() && !listed.to_string().contains(&secret),
        "the secret is never shown again"
    );
}

#[actix_web::test]
async fn registration_refuses_clients_that_could_be_abused_and_stores_nothing() {
    let server = TestServer::start().await;
    let alice = server.provision("registration-alice", KeyKind::EcP256, 10, None).await;
    let key = server.operator_key();
    let cases = [
        (
            json!({"name": "A", "type": "public", "scopes": ["service"], "redirect_uris": ["http://app.example/cb"]}),
            "loopback",
        ),
        (
            json!({"name": "A", "type": "public", "scopes": ["service"], "redirect_uris": ["https://app.example/cb#x"]}),
            "fragment",
        ),
        (
            json!({"name": "A", "type": "public", "scopes": ["service"], "redirect_uris": ["http://localhost:8000/cb"]}),
            "localhost",
        ),
        (
            json!({"name": "A", "type": "public", "scopes": ["service"], "redirect_uris": ["myapp:/cb"]}),
            "reverse domain",
        ),
        (
            json!({"name": "A", "type": "public", "scopes": ["service"], "account_user_id": alice.user_id, "redirect_uris": ["https://a.example/cb"]}),
            "only a confidential client",
        ),
        (
            json!({"name": "A", "type": "confidential", "scopes": ["service"], "account_user_id": "no-such-user"}),
            "no such account",
        ),
        (
            json!({"name": "A", "type": "confidential", "scopes": ["service", "credential"], "account_user_id": alice.user_id}),
            "credential scope needs a redirect URI",
        ),
        (
            json!({"name": "A", "type": "confidential", "scopes": [], "redirect_uris": ["https://a.example/cb"]}),
            "at least one",
        ),
        (
            json!({"name": "A", "type": "confidential", "scopes": ["openid"], "redirect_uris": ["https://a.example/cb"]}),
            "openid",
        ),
        (
            json!({"name": "", "type": "confidential", "scopes": ["service"], "redirect_uris": ["https://a.example/cb"]}),
            "name",
        ),
        (json!({"name": "A", "type": "confidential", "scopes": ["service"]}), "a redirect URI, or an account"),
    ];
    for (body, text) in cases {
        let (status, answer) = server.post("/api/admin/v1/oauth-clients", Some(&key), body.clone()).await;
        assert_error(status, &answer, 400, "invalid_request", text);
    }
    let (status, answer) = server
        .post(
            "/api/admin/v1/oauth-clients",
            Some(&key),
            json!({"name": "A", "type": "secretive", "scopes": ["service"]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    // A person's token is not an operator's key.
    let token = server.login("v1", &alice).await;
    let (status, _) = server
        .post(
            "/api/admin/v1/oauth-clients",
            Some(&token),
            json!({"name": "Mine", "type": "confidential", "scopes": ["service"], "account_user_id": alice.user_id}),
        )
        .await;
    assert_eq!(status, 401);
    let (_, listed) = server.get("/api/admin/v1/oauth-clients", Some(&key)).await;
    assert_eq!(listed["clients"], json!([]), "nothing stored");

    // Binding a client to a person's account tells them.
    let person = server.enrol("bound.person@example.com", "+38640111222").await;
    register(
        &server,
        json!({"name": "Payroll sealer", "type": "confidential", "scopes": ["service"], "account_user_id": person.user_id}),
    )
    .await;
    let told = server.outbox(&person.email).await;
    let notice = told.iter().find(|m| m["subject"] == "An application can now act for your signing account").unwrap();
    assert!(notice["body"].as_str().unwrap().contains("\"Payroll sealer\""), "{notice}");
}

#[actix_web::test]
async fn info_and_the_metadata_say_where_the_authorisation_server_is_and_what_it_offers() {
    let server = TestServer::start().await;
    let (status, metadata) = server.get("/.well-known/oauth-authorization-server", None).await;
    assert_eq!(status, 200, "{metadata}");
    let issuer = metadata["issuer"].as_str().unwrap().to_string();
    assert!(!issuer.ends_with('/'), "{issuer}");
    assert_eq!(metadata["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(metadata["revocation_endpoint"], format!("{issuer}/oauth2/revoke"));
    assert_eq!(metadata["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(metadata["response_types_supported"], json!([]), "no authorisation code flow yet");
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256", "ES384"])
    );

    let (_, v1) = server.post("/csc/v1/info", None, json!({})).await;
    assert_eq!(v1["authType"], json!(["basic", "oauth2client"]));
    assert_eq!(v1["oauth2"], format!("{issuer}/"), "v1: the base the endpoint paths are appended to");
    let (_, v2) = server.post("/csc/v2/info", None, json!({})).await;
    assert_eq!(v2["authType"], json!(["basic", "oauth2client"]));
    assert_eq!(v2["oauth2Issuer"], issuer.as_str());
    assert!(v2.get("oauth2").is_none(), "v2 gives oauth2Issuer or oauth2, not both");
}

#[test]
fn an_operator_registers_lists_and_disables_a_client_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = rssp(dir.path(), args, &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&[
        "oauth-client",
        "create",
        "--name",
        "Desktop signer",
        "--type",
        "public",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--redirect-uri",
        "com.example.signer:/cb",
        "--scopes",
        "service,credential",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(created["client_secret"], Value::Null);
    let id = created["client_id"].as_str().unwrap().to_string();

    let (code, out, err) = run(&["oauth-client", "list"]);
    assert_eq!(code, Some(0), "{err}");
    let listed: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(listed["client_id"], id.as_str());
    assert_eq!(listed["scopes"], json!(["service", "credential"]));
    assert_eq!(listed["redirect_uris"], json!(["http://127.0.0.1/callback", "com.example.signer:/cb"]));
    assert_eq!(listed["disabled_at"], Value::Null);

    let (code, _, err) = run(&["oauth-client", "disable", "--client-id", &id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["oauth-client", "disable", "--client-id", &id]);
    assert_ne!(code, Some(0));
    assert!(err.contains("no enabled OAuth client"), "{err}");
    let (code, _, err) = run(&[
        "oauth-client",
        "create",
        "--name",
        "Bad",
        "--type",
        "public",
        "--scopes",
        "service",
        "--redirect-uri",
        "http://app.example/cb",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("loopback"), "{err}");
}

/// A compact JWS over `claims` with `header`, signed by `sign` (which gets the signing input).
fn jws(header: Value, claims: Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// An RSA signature by openssl (an independent signer) with the key in `pem`: PKCS#1 v1.5, or PSS with a
/// 32-byte salt as JWS PS256 has it (RFC 7518 §3.5).
fn openssl_sign(dir: &std::path::Path, pem: &std::path::Path, input: &[u8], pss: bool) -> Vec<u8> {
    let data = dir.join("input");
    std::fs::write(&data, input).unwrap();
    let mut command = std::process::Command::new("openssl");
    command.args(["dgst", "-sha256", "-sign"]).arg(pem);
    if pss {
        command.args(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]);
    }
    let out = command.arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[actix_web::test]
async fn a_client_with_keys_authenticates_with_assertions_it_signs_each_accepted_once() {
    use base64::Engine;
    use p256::ecdsa::signature::Signer as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let server = TestServer::start().await;
    let alice = server.provision("jwt-alice", KeyKind::EcP256, 10, None).await;

    let ec = p256::ecdsa::SigningKey::from_slice(&rssp::domain::secrets::random_bytes::<32>()).unwrap();
    let point = ec.verifying_key().to_sec1_point(false);
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("rsa.pem");
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    let modulus =
        std::process::Command::new("openssl").args(["rsa", "-noout", "-modulus", "-in"]).arg(&pem).output().unwrap();
    let modulus = String::from_utf8(modulus.stdout).unwrap();
    let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())},
        {"kty": "RSA", "kid": "rsa", "n": b64(&n), "e": "AQAB"},
    ]});
    let (id, secret) = register(
        &server,
        json!({"name": "Keyed sealer", "type": "confidential", "scopes": ["service"], "account_user_id": alice.user_id,
               "jwks": jwks}),
    )
    .await;
    assert_eq!(secret, None, "a client with keys gets no secret");

    let token_endpoint = format!("{}/oauth2/token", server.url);
    let claims = |jti: &str, aud: &str| json!({"iss": id, "sub": id, "aud": aud, "exp": server.now() + 120, "iat": server.now(), "jti": jti});
    let es256 = |claims: Value, kid: &str| {
        jws(json!({"alg": "ES256", "kid": kid}), claims, |input| {
            let signature: p256::ecdsa::Signature = ec.sign(input);
            signature.to_bytes().to_vec()
        })
    };
    let jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let with_assertion = |assertion: &str, client_id: Option<&str>| {
        let mut form = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_assertion_type".to_string(), jwt_bearer.to_string()),
            ("client_assertion".to_string(), assertion.to_string()),
        ];
        if let Some(id) = client_id {
            form.push(("client_id".into(), id.into()));
        }
        form
    };
    let post = |form: Vec<(String, String)>| {
        let server = &server;
        async move {
            let response = server.http.post(format!("{}/oauth2/token", server.url)).form(&form).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // ES256, with client_id sent; the same assertion a second time is a replay.
    let first = es256(claims("jti-1", &token_endpoint), "ec");
    let (status, body) = post(with_assertion(&first, Some(&id))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(lists_credential(&server, "v1", &token, &alice.credential_id).await, (200, true));
    let (status, body) = post(with_assertion(&first, Some(&id))).await;
    assert_error(status, &body, 401, "invalid_client", "used before");
    // Without client_id (found by the assertion's sub), with the issuer as audience.
    let (status, body) = post(with_assertion(&es256(claims("jti-2", &server.url), "ec"), None)).await;
    assert_eq!(status, 200, "{body}");
    // RS256 and PS256, signed by openssl.
    for (alg, pss, jti) in [("RS256", false, "jti-3"), ("PS256", true, "jti-4")] {
        let assertion = jws(json!({"alg": alg, "kid": "rsa"}), claims(jti, &token_endpoint), |input| {
            openssl_sign(dir.path(), &pem, input, pss)
        });
        let (status, body) = post(with_assertion(&assertion, Some(&id))).await;
        assert_eq!(status, 200, "{alg}: {body}");
    }

    // Refused, each with invalid_client (or invalid_request for two ways at once), and nothing issued.
    let issued = oauth_tokens(&server);
    let stranger = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
    let by_stranger = jws(json!({"alg": "ES256", "kid": "ec"}), claims("jti-5", &token_endpoint), |input| {
        let signature: p256::ecdsa::Signature = stranger.sign(input);
        signature.to_bytes().to_vec()
    });
    let refusals = [
        (with_assertion(&by_stranger, Some(&id)), 401, "invalid_client", "does not verify"),
        (
            with_assertion(&es256(claims("jti-6", "https://elsewhere.example/token"), "ec"), Some(&id)),
            401,
            "invalid_client",
            "aud",
        ),
        (
            with_assertion(&es256(claims("jti-7", &token_endpoint), "rsa"), Some(&id)),
            401,
            "invalid_client",
            "does not verify",
        ),
        (
            with_assertion(
                &es256(
                    json!({"iss": id, "sub": id, "aud": token_endpoint, "exp": server.now() + 3600, "jti": "jti-8"}),
                    "ec",
                ),
                Some(&id),
            ),
            401,
            "invalid_client",
            "300 s",
        ),
        (
            with_assertion(&jws(json!({"alg": "none"}), claims("jti-9", &token_endpoint), |_| Vec::new()), Some(&id)),
            401,
            "invalid_client",
            "alg",
        ),
        (with_assertion("not-a-jwt", Some(&id)), 401, "invalid_client", "not a signed JWT"),
    ];
    for (form, status, error, text) in refusals {
        let (got, body) = post(form).await;
        assert_error(got, &body, status, error, text);
    }
    let mut wrong_type = with_assertion(&es256(claims("jti-10", &token_endpoint), "ec"), Some(&id));
    wrong_type[1].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    let (status, body) = post(wrong_type).await;
    assert_error(status, &body, 401, "invalid_client", "client_assertion_type");
    let mut with_secret = with_assertion(&es256(claims("jti-11", &token_endpoint), "ec"), Some(&id));
    with_secret.push(("client_secret".into(), "anything".into()));
    let (status, body) = post(with_secret).await;
    assert_error(status, &body, 400, "invalid_request", "one way");
    let (status, _, body) = form_post(
        &server,
        "/oauth2/token",
        ClientAuth::None,
        &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", "rsspcs_guess")],
        &[],
    )
    .await;
    assert_error(status, &body, 401, "invalid_client", "client_assertion");
    assert_eq!(oauth_tokens(&server), issued, "no refusal issued a token");

    // It revokes its token with an assertion too.
    let (status, _, body) = form_post(
        &server,
        "/oauth2/revoke",
        ClientAuth::None,
        &[
            ("token", &token),
            ("client_assertion_type", jwt_bearer),
            ("client_assertion", &es256(claims("jti-12", &format!("{}/oauth2/revoke", server.url)), "ec")),
        ],
        &[],
    )
    .await;
    // The revocation endpoint is not an audience: the token endpoint and the issuer are.
    assert_error(status, &body, 401, "invalid_client", "aud");
    let (status, _, body) = form_post(
        &server,
        "/oauth2/revoke",
        ClientAuth::None,
        &[
            ("token", &token),
            ("client_assertion_type", jwt_bearer),
            ("client_assertion", &es256(claims("jti-13", &server.url), "ec")),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(lists_credential(&server, "v1", &token, &alice.credential_id).await.0, 401);

    // A key set holding a private key is refused at registration.
    let mut leaked = jwks.clone();
    leaked["keys"][0]["d"] = json!(b64(&ec.to_bytes()));
    let (status, body) = server
        .post(
            "/api/admin/v1/oauth-clients",
            Some(&server.operator_key()),
            json!({"name": "Leaky", "type": "confidential", "scopes": ["service"], "account_user_id": alice.user_id, "jwks": leaked}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_request", "private key");
}
