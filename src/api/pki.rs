//! What the CA publishes: its certificates (AIA caIssuers) and CRLs (CRL distribution points).

use actix_web::web::{Data, Path};
use actix_web::{get, HttpResponse};

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::run;
use crate::service::ca::{current_crl, issuing_certificate_by_serial as find_issuing_certificate, CrlIssuer};
use crate::service::ServiceError;
use crate::service::Services;

const TAG: &str = "PKI";

fn der(content_type: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).body(body)
}

#[utoipa::path(get, tag = TAG,
    responses((status = 200, description = "The root CA certificate, DER", content_type = "application/pkix-cert")))]
#[get("/root-ca.cer")]
pub async fn root_certificate(services: Data<Services>) -> HttpResponse {
    der("application/pkix-cert", services.ca.root.certificate_der.clone())
}

#[utoipa::path(get, tag = TAG,
    responses((status = 200, description = "The issuing CA certificate, DER", content_type = "application/pkix-cert")))]
#[get("/issuing-ca.cer")]
pub async fn issuing_certificate(services: Data<Services>) -> HttpResponse {
    der("application/pkix-cert", services.ca.issuing.certificate_der.clone())
}

#[utoipa::path(get, tag = TAG,
    responses((status = 200, description = "The certificate of the time-stamping unit (`POST /tsa`), DER",
        content_type = "application/pkix-cert")))]
#[get("/tsa.cer")]
pub async fn tsa_certificate(services: Data<Services>) -> HttpResponse {
    der("application/pkix-cert", services.tsa.unit.certificate_der.clone())
}

#[utoipa::path(get, tag = TAG,
    params(("serial" = String, Path, description = "Serial number of the certificate, hex")),
    responses((status = 200, description = "A certificate of the issuing CA by serial number, DER: the current one \
                or one it replaced (`rssp pki reissue-issuing-ca`), kept published for validation",
                content_type = "application/pkix-cert"),
              (status = 404, body = ErrorBody)))]
#[get("/issuing-ca/{serial}.cer")]
pub async fn issuing_certificate_by_serial(
    services: Data<Services>,
    serial: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let serial = serial.into_inner();
    let found = run(&services, Dialect::V1, move |s| {
        find_issuing_certificate(s, &serial)?
            .ok_or_else(|| ServiceError::NotFound("No issuing CA certificate with this serial number".into()))
    })
    .await?;
    Ok(der("application/pkix-cert", found))
}

#[utoipa::path(get, tag = TAG,
    responses((status = 200, description = "CRL of the root CA, DER", content_type = "application/pkix-crl"),
              (status = 500, body = ErrorBody)))]
#[get("/root-ca.crl")]
pub async fn root_crl(services: Data<Services>) -> Result<HttpResponse, ApiError> {
    let crl = run(&services, Dialect::V1, |s| current_crl(s, CrlIssuer::Root)).await?;
    Ok(der("application/pkix-crl", crl))
}

#[utoipa::path(get, tag = TAG,
    responses((status = 200, description = "CRL of the issuing CA, DER", content_type = "application/pkix-crl"),
              (status = 500, body = ErrorBody)))]
#[get("/issuing-ca.crl")]
pub async fn issuing_crl(services: Data<Services>) -> Result<HttpResponse, ApiError> {
    let crl = run(&services, Dialect::V1, |s| current_crl(s, CrlIssuer::Issuing)).await?;
    Ok(der("application/pkix-crl", crl))
}
