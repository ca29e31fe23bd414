//! The account and certificate lifecycle through `/api/v1`, `/api/admin/v1` and the CSC API: the real
//! server, SoftHSM and database, development mode (messages read from the outbox).

mod account_care;
mod activation;
mod isolation;
mod journey;
mod operators;
mod orders;
mod pairing;
mod rekey;

use serde_json::json;

use crate::common::TestServer;
use rssp::config::PackageConfig;

/// A small package, so that spending the quota takes a few signatures.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.lifecycle.packages =
            vec![PackageConfig { id: "1y".into(), validity_years: 1, transactions: 3, net_cents: 3900 }];
    })
    .await
}

/// A CSC session: `auth/login` with e-mail and password; the access token.
async fn csc_login(ts: &TestServer, email: &str, password: &str) -> String {
    let (status, body) = ts.basic_login("v1", email, password, json!({})).await;
    assert_eq!(status, 200);
    body["access_token"].as_str().unwrap().to_string()
}
