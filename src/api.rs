//! HTTP only: parse the request into domain types, call one service function, shape the response.
//! One module per surface; `error` maps every error once.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod certificates;
pub(crate) mod csc_common;
pub(crate) mod csc_v1;
pub(crate) mod csc_v2;
pub(crate) mod edges;
pub(crate) mod error;
pub mod extract;
pub(crate) mod large_body;
pub(crate) mod large_buffers;
pub(crate) mod lifecycle_types;
pub(crate) mod oauth2;
pub(crate) mod ocsp;
pub(crate) mod ops;
pub(crate) mod pki;
pub(crate) mod qr;
pub(crate) mod sign_doc;
pub(crate) mod signing_sessions;
pub(crate) mod tsa;
pub(crate) mod webhooks;

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_actix_web::{scope, AppExt};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rssp",
        description = "Remote Signature Service Provider: the Cloud Signature Consortium API v1.0.4.0 (`/csc/v1`) \
                       and v2.0.0.2 (`/csc/v2`), with keys in a PKCS#11 HSM and its own CA (`/pki`); the account and \
                       certificate lifecycle for front ends (`/api/v1`), the admin API for operators (`/api/admin/v1`) and an OAuth2 \
                       authorisation server (`/oauth2`, RFC 8414 metadata at `/.well-known/oauth-authorization-server`).",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    paths(ops::metrics),
    components(schemas(error::ErrorBody))
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, and the OpenAPI document collected from them.
pub fn routes() -> (
    App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        >,
    >,
    utoipa::openapi::OpenApi,
) {
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(
            scope::scope("/csc/v1")
                .service(csc_v1::info)
                .service(csc_v1::login)
                .service(csc_v1::revoke)
                .service(csc_v1::list)
                .service(csc_v1::credential_info)
                .service(csc_v1::authorize)
                .service(csc_v1::extend_transaction)
                .service(csc_v1::sign_hash)
                .service(csc_v1::timestamp),
        )
        .service(
            scope::scope("/csc/v2")
                .service(csc_v2::info)
                .service(csc_v2::login)
                .service(csc_v2::revoke)
                .service(csc_v2::list)
                .service(csc_v2::credential_info_handler)
                .service(csc_v2::authorize)
                .service(csc_v2::extend_transaction)
                .service(csc_v2::sign_hash)
                .service(sign_doc::sign_doc)
                .service(csc_v2::timestamp),
        )
        .service(
            scope::scope("/api/v1")
                .service(account::documents)
                .service(account::register)
                .service(account::activation_send_code)
                .service(account::activation_complete)
                .service(account::login)
                .service(account::logout)
                .service(account::me)
                .service(account::consent)
                .service(account::start_pairing)
                .service(account::confirm_pairing)
                .service(account::postpone)
                .service(account::totp_reset)
                .service(account::totp_reset_confirm)
                .service(account::totp_reset_cancel)
                .service(account::totp_resets)
                .service(account::change_password)
                .service(account::password_reset)
                .service(account::password_reset_send_code)
                .service(account::password_reset_complete)
                .service(account::phone_change)
                .service(account::phone_change_verify_email)
                .service(account::phone_change_confirm)
                .service(certificates::packages)
                .service(certificates::create_order)
                .service(certificates::list_orders)
                .service(certificates::get_order)
                .service(certificates::update_invoice)
                .service(certificates::start_payment)
                .service(certificates::personal_data)
                .service(certificates::identity_document)
                .service(certificates::identity_checks)
                .service(certificates::issue)
                .service(certificates::list_credentials)
                .service(certificates::rekey)
                .service(certificates::revoke)
                .service(signing_sessions::create_signing_session)
                .service(signing_sessions::list_signing_sessions)
                .service(signing_sessions::get_signing_session)
                .service(signing_sessions::sign_signing_session)
                .service(signing_sessions::download_signed_document)
                .service(signing_sessions::signed_files_zip)
                .service(signing_sessions::delete_signing_session)
                .service(webhooks::payments)
                .service(webhooks::identity),
        )
        .service(
            scope::scope("/api/admin/v1")
                .service(admin::users)
                .service(admin::user)
                .service(admin::orders)
                .service(admin::identity_checks)
                .service(admin::decide)
                .service(admin::revoke)
                .service(admin::audit)
                .service(admin::timestamps)
                .service(admin::outbox)
                .service(admin::authenticator_resets)
                .service(admin::decide_authenticator_reset)
                .service(admin::run_jobs)
                .service(admin::oauth_clients::create_oauth_client)
                .service(admin::oauth_clients::oauth_clients)
                .service(admin::oauth_clients::disable_oauth_client),
        )
        .service(csc_common::logo)
        .service(ops::healthz)
        .service(ops::readyz)
        .service(
            scope::scope("/pki")
                .service(pki::root_certificate)
                .service(pki::issuing_certificate)
                .service(pki::issuing_certificate_by_serial)
                .service(pki::root_crl)
                .service(pki::issuing_crl)
                .service(pki::tsa_certificate),
        )
        .service(oauth2::token_endpoint)
        .service(oauth2::revoke)
        .service(oauth2::revoke_alias)
        .service(oauth2::metadata)
        .service(tsa::time_stamp)
        .service(ocsp::ocsp_post)
        .service(ocsp::ocsp_get)
        .split_for_parts();
    let (app, mut api) = (app, api);
    edges::document_edge_responses(&mut api);
    (app, api)
}

/// The request as the access log shows it: method, path, and the query's parameter names with their
/// values redacted. Query strings carry personal data (`?email=`, `?recipient=`), and the access log
/// must not.
pub fn access_log_line(method: &str, uri: &actix_web::http::Uri) -> String {
    let path = uri.path();
    match uri.query() {
        None | Some("") => format!("{method} {path}"),
        Some(query) => {
            let names: Vec<String> = query
                .split('&')
                .map(|pair| {
                    let name = pair.split('=').next().unwrap_or_default();
                    // Only plain parameter names are shown; anything odd is hidden as a whole.
                    if !name.is_empty()
                        && name.len() <= 32
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        format!("{name}=…")
                    } else {
                        "…".to_string()
                    }
                })
                .collect();
            format!("{method} {path}?{}", names.join("&"))
        }
    }
}

/// The OpenAPI document as committed under `openapi/`.
pub fn openapi_json() -> String {
    let (_, api) = routes();
    api.to_pretty_json().unwrap_or_default() + "\n"
}
