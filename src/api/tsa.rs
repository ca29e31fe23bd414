//! `POST /tsa`: the RFC 3161 HTTP binding (§3.4) of the time-stamping authority, for relying parties
//! and signing tools. Who may use it is `tsa.access`: anyone, TSA clients (an API key from
//! `rssp tsa-client create` as bearer token; an operator's key is refused), or nobody.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data};
use actix_web::{post, FromRequest, HttpRequest, HttpResponse};

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{self, run};
use crate::config::TsaAccess;
use crate::service::timestamps::{self, RelyingParty, TsaAnswer};
use crate::service::Services;

/// Media type of an RFC 3161 request (RFC 3161 §4).
const QUERY_TYPE: &str = "application/timestamp-query";
/// Media type of an RFC 3161 response.
const REPLY_TYPE: &str = "application/timestamp-reply";
/// Largest request accepted: a TimeStampReq is about 100 bytes; room for a policy, a long nonce and
/// extensions (which are then rejected with unacceptedExtension).
pub const TSA_BODY_LIMIT: usize = 16 * 1024;

/// A request to `POST /tsa`: who sent it (checked before the body is read) and the DER body.
pub struct TsaRequest {
    requester: RelyingParty,
    der: Bytes,
}

impl FromRequest for TsaRequest {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = extract::read_limited_body(req, payload, TSA_BODY_LIMIT);
        let req = req.clone();
        Box::pin(async move {
            let services = req.app_data::<Data<Services>>().cloned().ok_or_else(ApiError::internal)?;
            let requester = match services.config.tsa.access(services.config.mode) {
                TsaAccess::Off => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "invalid_request",
                        "The time-stamping service is not offered here (tsa.access = off)",
                    )
                    .into())
                }
                TsaAccess::Open => RelyingParty::Anonymous,
                TsaAccess::Bearer => RelyingParty::Client(extract::tsa_client(&services, &req).await?.name),
            };
            extract::require_media_type(&req, QUERY_TYPE)?;
            Ok(TsaRequest { requester, der: body.await? })
        })
    }
}

/// An RFC 3161 answer: granted and rejected requests alike are 200 with a TimeStampResp (RFC 3161
/// §2.4.2); a request the service could not serve for want of its database or HSM gets a
/// TimeStampResp with systemFailure and the status of that failure (503 with Retry-After, or 500).
#[utoipa::path(post, tag = "PKI",
    request_body(content = Vec<u8>, content_type = "application/timestamp-query",
        description = "A DER TimeStampReq (RFC 3161 §2.4.1)"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A DER TimeStampResp: granted with the token, or rejected with badAlg, \
            badRequest, badDataFormat, unacceptedPolicy or unacceptedExtension", content_type = "application/timestamp-reply"),
        (status = 401, description = "`tsa.access = bearer` and no valid TSA client API key", body = ErrorBody),
        (status = 404, description = "`tsa.access = off`", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/timestamp-query", body = ErrorBody),
        (status = 503, description = "A DER TimeStampResp with systemFailure: no HSM session or database \
            connection came free in time", content_type = "application/timestamp-reply")))]
#[post("/tsa")]
pub async fn time_stamp(services: Data<Services>, request: TsaRequest) -> HttpResponse {
    let TsaRequest { requester, der } = request;
    match run(&services, Dialect::Lifecycle, move |s| timestamps::respond(s, &der, requester)).await {
        Ok(TsaAnswer::Granted(body) | TsaAnswer::Rejected(body)) => {
            HttpResponse::Ok().content_type(REPLY_TYPE).body(body)
        }
        Err(error) => error.with_protocol_body(REPLY_TYPE, timestamps::system_failure()),
    }
}
