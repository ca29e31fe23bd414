//! OAuth2 clients in the admin API: register one (its secret shown once), list them, disable one (its
//! tokens are revoked with it).

use actix_web::web::{Data, Json, Path};
use actix_web::{get, post, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{L, TAG};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{operator, run, Authed, CscJson, OperatorKey};
use crate::api::lifecycle_types::rfc3339;
use crate::domain::{ClientId, ClientType, UserId};
use crate::service::oauth2::clients::{self, Client, NewClient};
use crate::service::Services;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOAuthClientRequest {
    /// Shown to people when the application asks for access, and to operators.
    pub name: String,
    /// `confidential` (gets a secret) or `public` (a native or browser app: no secret, PKCE).
    #[serde(rename = "type")]
    pub client_type: ClientType,
    /// Where the client may send people back to: https, http to 127.0.0.1 or [::1] (any port), or a
    /// private-use scheme such as `com.example.app:/cb`. Matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// What the client may ask for: `service`, `credential`, or both.
    pub scopes: Vec<String>,
    /// The account a confidential client may act for with the `client_credentials` grant.
    pub account_user_id: Option<UserId>,
    /// A confidential client's public keys, an RFC 7517 JWK Set (`{"keys": [...]}`: RSA of 2048 bits or
    /// more, EC on P-256 or P-384): it then authenticates with assertions it signs (`private_key_jwt`,
    /// RS256, PS256, ES256, ES384) and gets no secret.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOAuthClientResponse {
    pub client_id: ClientId,
    /// A confidential client's secret, shown this once (only its digest is kept); none for a public
    /// client or one with keys.
    pub client_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientView {
    pub client_id: ClientId,
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: ClientType,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub account_user_id: Option<UserId>,
    /// How it authenticates: `none` (public), `client_secret_basic` (its secret, Basic or in the form),
    /// `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    pub created_at: String,
    /// When an operator disabled it; a disabled client gets no token.
    pub disabled_at: Option<String>,
}

impl From<Client> for OAuthClientView {
    fn from(c: Client) -> Self {
        OAuthClientView {
            client_id: c.id,
            name: c.name,
            client_type: c.client_type,
            redirect_uris: c.redirect_uris.iter().map(|u| u.as_str().to_string()).collect(),
            scopes: c.scopes.names().into_iter().map(str::to_string).collect(),
            account_user_id: c.account,
            token_endpoint_auth_method: c.authentication.as_str().to_string(),
            created_at: rfc3339(c.created_at),
            disabled_at: c.disabled_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthClientsResponse {
    pub clients: Vec<OAuthClientView>,
}

/// Registers an OAuth2 client. A confidential client's secret is in this answer only.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = CreateOAuthClientRequest,
    responses((status = 201, body = CreatedOAuthClientResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
#[post("/oauth-clients")]
pub async fn create_oauth_client(
    services: Data<Services>,
    request: Authed<OperatorKey, CscJson<CreateOAuthClientRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(OperatorKey(op), CscJson(body)) = request;
    let new = NewClient {
        name: body.name,
        client_type: body.client_type,
        redirect_uris: body.redirect_uris,
        scopes: body.scopes.join(" "),
        account: body.account_user_id,
        jwks: body.jwks.map(|jwks| jwks.to_string()),
    };
    let created = run(&services, L, move |s| clients::create(s, new, &op.name)).await?;
    let client_secret = created.client_secret.as_ref().map(|secret| secret.expose_secret().to_string());
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(CreatedOAuthClientResponse { client_id: created.client_id, client_secret }))
}

/// The registered OAuth2 clients, the most recent first.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = OAuthClientsResponse), (status = 401, body = ErrorBody)))]
#[get("/oauth-clients")]
pub async fn oauth_clients(services: Data<Services>, req: HttpRequest) -> Result<Json<OAuthClientsResponse>, ApiError> {
    operator(&services, &req).await?;
    let list = run(&services, L, clients::list).await?;
    Ok(Json(OAuthClientsResponse { clients: list.into_iter().map(OAuthClientView::from).collect() }))
}

/// Disables an OAuth2 client: it gets no more tokens, and every token issued to it is revoked.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[post("/oauth-clients/{client_id}/disable")]
pub async fn disable_oauth_client(
    services: Data<Services>,
    req: HttpRequest,
    client_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = operator(&services, &req).await?;
    let client_id = ClientId::new(client_id.into_inner());
    run(&services, L, move |s| clients::disable(s, &client_id, &op.name)).await?;
    Ok(HttpResponse::NoContent().finish())
}
