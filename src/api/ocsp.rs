//! `/ocsp`: the OCSP responder over HTTP (RFC 6960 Appendix A, RFC 5019 §5): `POST` with the DER
//! request as body, or `GET` with it base64 and URL-encoded in the path. Anyone may ask. A response
//! that may be cached is served without leaving the async runtime; any other one is made on a blocking
//! thread.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::Data;
use actix_web::{get, post, FromRequest, HttpRequest, HttpResponse};
use base64::Engine;

use super::error::{Dialect, ErrorBody};
use super::extract::{self, run};
use crate::clock::http_date;
use crate::service::ocsp::{self, OcspAnswer};
use crate::service::Services;

/// Media type of an OCSP request.
const REQUEST_TYPE: &str = "application/ocsp-request";
/// Media type of an OCSP response.
const RESPONSE_TYPE: &str = "application/ocsp-response";
/// Largest request accepted: one CertID is about 80 bytes; room for sixteen and a signature.
pub const OCSP_BODY_LIMIT: usize = 16 * 1024;

/// Answers a DER request: from the cache when it may be, otherwise through the service.
async fn answer(services: Data<Services>, der: Vec<u8>, cacheable_over_http: bool) -> HttpResponse {
    let now = services.now();
    let (answer, served) = match ocsp::cached_answer(&services, &der) {
        Some(answer) => (Ok(answer), "cached"),
        None => (run(&services, Dialect::Lifecycle, move |s| ocsp::respond(s, &der)).await, "computed"),
    };
    match answer {
        Ok(answer) => {
            crate::metrics::METRICS.ocsp_responses.with_label_values(&[served]).inc();
            ok(answer, now, cacheable_over_http)
        }
        // The service error's own status (503 with Retry-After, or 500), the body an OCSP client reads.
        Err(error) => {
            let temporary = error.status == StatusCode::SERVICE_UNAVAILABLE;
            error.with_protocol_body(RESPONSE_TYPE, ocsp::failure_response(temporary))
        }
    }
}

/// 200 with the response; a cacheable one fetched with GET carries the HTTP caching headers of
/// RFC 5019 §6.2, so that proxies and CDNs can serve it until nextUpdate.
fn ok(answer: OcspAnswer, now: i64, cacheable_over_http: bool) -> HttpResponse {
    let mut reply = HttpResponse::Ok();
    reply.content_type(RESPONSE_TYPE);
    match answer.validity {
        Some((this_update, next_update)) if cacheable_over_http => {
            let max_age = (next_update - now).max(0);
            reply
                .insert_header(("cache-control", format!("max-age={max_age}, public, no-transform, must-revalidate")))
                .insert_header(("last-modified", http_date(this_update)))
                .insert_header(("expires", http_date(next_update)));
        }
        _ => {
            reply.insert_header(("cache-control", "no-store"));
        }
    }
    reply.body(answer.der.as_ref().clone())
}

/// An OCSP request sent with POST: the DER body, at most [`OCSP_BODY_LIMIT`] bytes.
pub struct OcspPost(Vec<u8>);

impl FromRequest for OcspPost {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = extract::read_limited_body(req, payload, OCSP_BODY_LIMIT);
        let media_type = extract::require_media_type(req, REQUEST_TYPE);
        Box::pin(async move {
            media_type?;
            Ok(OcspPost(body.await?.to_vec()))
        })
    }
}

#[utoipa::path(post, tag = "PKI",
    request_body(content = Vec<u8>, content_type = "application/ocsp-request", description = "A DER OCSPRequest (RFC 6960 §4.1)"),
    responses(
        (status = 200, description = "A DER OCSPResponse: successful (good, revoked with its time, or unknown, for each \
            certificate asked about), malformedRequest, or unauthorized (a certificate of another CA)",
            content_type = "application/ocsp-response"),
        (status = 415, description = "Content-Type is not application/ocsp-request", body = ErrorBody),
        (status = 503, description = "A DER OCSPResponse with tryLater: no HSM session or database connection came \
            free in time", content_type = "application/ocsp-response")))]
#[post("/ocsp")]
pub async fn ocsp_post(services: Data<Services>, request: OcspPost) -> HttpResponse {
    answer(services, request.0, false).await
}

#[utoipa::path(get, tag = "PKI",
    params(("request" = String, Path, description = "The DER OCSPRequest, base64 and URL-encoded (RFC 6960 Appendix A.1)")),
    responses(
        (status = 200, description = "A DER OCSPResponse, with Cache-Control, Last-Modified and Expires when it may be \
            cached (RFC 5019 §6.2)", content_type = "application/ocsp-response"),
        (status = 503, description = "A DER OCSPResponse with tryLater", content_type = "application/ocsp-response")))]
#[get("/ocsp/{request:.+}")]
pub async fn ocsp_get(services: Data<Services>, req: HttpRequest) -> HttpResponse {
    // The raw path: a base64 request may hold '/' (sent as is or as %2F) and '+' (or %2B).
    let encoded = req.uri().path().strip_prefix("/ocsp/").unwrap_or_default();
    let der = percent_decode(encoded).and_then(|text| {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text.trim()))
            .ok()
    });
    match der {
        Some(der) if der.len() <= OCSP_BODY_LIMIT => answer(services, der, true).await,
        _ => ok(ocsp::malformed(), 0, false),
    }
}

/// `%XX` sequences decoded; None when one is broken or the result is not text.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_escapes_are_decoded_and_broken_ones_refused() {
        assert_eq!(percent_decode("MEUw%2FaB%2Bc%3D").as_deref(), Some("MEUw/aB+c="));
        assert_eq!(percent_decode("plain/base64+=").as_deref(), Some("plain/base64+="));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
