//! HTTP only: parse the request into domain types, call one service function, shape the response.
//! One module per surface; `error` maps every error once.

pub mod csc_common;
pub mod csc_v1;
pub mod csc_v2;
pub mod error;
pub mod extract;
pub mod pki;

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
                       and v2.0.0.2 (`/csc/v2`), with keys in a PKCS#11 HSM and its own CA (`/pki`).",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
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
    App::new()
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
                .service(csc_v1::sign_hash),
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
                .service(csc_v2::sign_hash),
        )
        .service(
            scope::scope("/pki")
                .service(pki::root_certificate)
                .service(pki::issuing_certificate)
                .service(pki::root_crl)
                .service(pki::issuing_crl),
        )
        .split_for_parts()
}

/// The OpenAPI document as committed under `openapi/`.
pub fn openapi_json() -> String {
    let (_, api) = routes();
    api.to_pretty_json().unwrap_or_default() + "\n"
}
