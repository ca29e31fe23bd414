//! What the CA publishes: its certificates (AIA caIssuers) and CRLs (CRL distribution points).

use actix_web::web::Data;
use actix_web::{get, HttpResponse};

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::run;
use crate::service::ca::{current_crl, CrlIssuer};
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
