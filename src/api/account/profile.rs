//! The profile (`GET /me`) and consents.

use actix_web::web::{Data, Json};
use actix_web::{get, post, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{portal_principal, run, Authed, CscJson, PortalUser};
use crate::api::lifecycle_types::rfc3339;
use crate::domain::AccountStatus;
use crate::service::accounts;
use crate::service::views::Consent;
use crate::service::Services;

use super::{totp_view, TotpView, L, TAG};

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// `privacy`, `terms` or `issuance_terms`.
    pub document: String,
    pub version: String,
    pub accepted_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileResponse {
    pub user_id: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The country that goes into the person's certificates (ISO 3166-1 alpha-2).
    pub country: String,
    pub status: AccountStatus,
    pub totp: TotpView,
    pub consents: Vec<ConsentView>,
}

fn consent_view(c: Consent) -> ConsentView {
    ConsentView { document: c.document, version: c.version, accepted_at: rfc3339(c.accepted_at) }
}

fn profile_response(services: &Services, p: accounts::Profile) -> ProfileResponse {
    ProfileResponse {
        totp: totp_view(services, p.totp),
        consents: p.consents.into_iter().map(consent_view).collect(),
        user_id: p.account.id.into(),
        given_name: p.account.given_name,
        surname: p.account.surname,
        email: p.account.email,
        phone: p.account.phone,
        country: p.account.country.unwrap_or_else(|| services.config.default_subject_country().to_string()),
        status: p.account.status,
    }
}

/// The person's profile, consents and authenticator status.
#[utoipa::path(get, tag = TAG, security(("bearer" = [])), responses((status = 200, body = ProfileResponse), (status = 401, body = ErrorBody)))]
#[get("/me")]
pub async fn me(services: Data<Services>, req: HttpRequest) -> Result<Json<ProfileResponse>, ApiError> {
    let principal = portal_principal(&services, &req).await?;
    let profile = run(&services, L, move |s| accounts::profile(s, &principal)).await?;
    Ok(Json(profile_response(&services, profile)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// `privacy` or `terms`.
    pub document: String,
    pub version: String,
}

/// Records the acceptance of a document's current version.
#[utoipa::path(post, tag = TAG, security(("bearer" = [])), request_body = ConsentRequest,
    responses((status = 201, body = ConsentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
#[post("/consents")]
pub async fn consent(
    services: Data<Services>,
    request: Authed<PortalUser, CscJson<ConsentRequest>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(PortalUser(principal), body) = request;
    let b = body.0;
    let consent = run(&services, L, move |s| accounts::accept_consent(s, &principal, &b.document, &b.version)).await?;
    Ok(HttpResponse::Created().json(consent_view(consent)))
}
