//! `signatures/signDoc` (CSC v2.0.0.2 §11.11): AdES signatures made on the server.
//!
//! - CAdES (`C`) of a whole document, attached (the document inside the CMS) or detached (a `.p7s`), or
//!   of a digest the client made of its content (detached only);
//! - PAdES (`P`) of a whole PDF, signed inside (an incremental update, [`pades`]), invisible;
//! - the CMS of a PAdES signature for a PDF the client prepared: the digest is that of its /ByteRange,
//!   the answer the CMS the client puts in the signature dictionary's /Contents;
//! - at `Ades-B-B`, or `Ades-B-T` with a signature time-stamp from rssp's own TSA; CAdES also at
//!   `Ades-B-LT` (the certificate and revocation values in the SignedData); a whole PDF also at
//!   `Ades-B-LT` (the validation data in its DSS) and `Ades-B-LTA` (then a document time-stamp).
//!
//! Authorised as signHash: under SCAL2 the SAD is bound to each digest sent, or for a document to its
//! digest made with the signature algorithm's hash. The SAD, the quota (one transaction per signature and
//! one per time-stamp) and the audit record are written in the ledger before the HSM signs, and given
//! back if the HSM fails. A time-stamp leaves only once the audit chain and the time-stamp log hold it.

use secrecy::{ExposeSecret, SecretString};
use x509_cert::der::Decode;

use crate::domain::ades::{ConformanceLevel, Packaging, SignatureFormat};
use crate::domain::algorithms::resolve_scheme;
use crate::domain::{sad, secrets, AuditEventName, CredentialId, Hasher, SignatureScheme};
use crate::hsm::KeyId;
use crate::metrics::METRICS;
use crate::pki::cades::{self, Baseline, Content};
use crate::pki::hsm_signer::HsmSigner;
use crate::pki::pades;
use crate::pki::PkiError;

use super::super::auth::Bearer;
use super::super::credentials::{ensure_usable, key_kind, usable_sad};
use super::super::timestamps::{self, SignatureTimeStamp};
use super::super::validation_data::{self, ValidationData};
use super::super::{Principal, ServiceError, Services};
use super::{refund, reservation, Spent};

/// What a client sends to `signatures/signDoc`, once parsed: each signature to make, in the order of
/// the request (each hash of a `documentDigests` entry is one).
#[derive(Debug, Clone)]
pub struct SignDocRequest {
    pub credential_id: CredentialId,
    pub sad: SecretString,
    pub items: Vec<ToSign>,
    /// `returnValidationInfo`: answer with the validation data the signatures do not carry.
    pub return_validation_info: bool,
    /// Where the request comes from, when not from a CSC client (the portal's signing session), for the
    /// audit record.
    pub origin: Option<String>,
}

/// What signDoc answers: the signatures in the order of the request, and the validation data if asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDocuments {
    pub signed: Vec<Signed>,
    /// Validation data not already in the signatures (CSC `validationInfo`).
    pub validation_info: Option<ValidationData>,
}

/// What one signature covers.
#[derive(Debug, Clone)]
pub enum Input {
    /// A digest the client made: of the content (CAdES) or of the PDF's /ByteRange (PAdES).
    Digest(Vec<u8>),
    /// The whole document.
    Document(Vec<u8>),
}

/// One signature to make.
#[derive(Debug, Clone)]
pub struct ToSign {
    pub input: Input,
    pub format: SignatureFormat,
    pub level: ConformanceLevel,
    /// None: the format's default (for a digest, the only packaging possible).
    pub packaging: Option<Packaging>,
    pub sign_algo: String,
    pub hash_algo: Option<String>,
    pub sign_algo_params: Option<Vec<u8>>,
    /// What a PDF signature shows and says (ignored for CAdES).
    pub look: PdfLook,
}

/// What a PDF signature shows and says besides the signer and the time: invisible unless placed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PdfLook {
    /// Where the visible signature goes; None: invisible.
    pub visible: Option<pades::Visible>,
    /// `/Reason`, also shown in a visible signature.
    pub reason: Option<String>,
    /// `/Location`, also shown in a visible signature.
    pub location: Option<String>,
}

/// One signature made, as signDoc answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// `DocumentWithSignature`: the signed document itself (CAdES attached: the CMS with the document).
    DocumentWithSignature(Vec<u8>),
    /// `SignatureObject`: a signature apart from what it signs (a detached CMS).
    SignatureObject(Vec<u8>),
}

/// One signature, planned: everything checked, nothing spent.
struct Plan {
    /// The item; for a whole PDF, once prepared, without its document, which `pdf` took.
    item: ToSign,
    scheme: SignatureScheme,
    packaging: Packaging,
    /// What the SAD must cover: the digest sent, or the document's. Also the CMS's message-digest, except
    /// for a whole PDF, whose CMS signs the /ByteRange of `pdf`.
    digest: Vec<u8>,
    /// For a whole PDF: how far it is.
    pdf: WholePdf,
}

/// Where a whole PDF (`P` in `documents`) stands in its plan.
enum WholePdf {
    /// Not a whole PDF: a digest, or a CAdES signature.
    No,
    /// Digested for the SAD: the hasher stands where that digest was made, before it finished, so that
    /// the /ByteRange digest goes on from it rather than reading the document again.
    Digested(Hasher),
    /// Its signature update written, waiting for the CMS of `byte_range`, the digest the CMS signs.
    Prepared { pdf: pades::Prepared, byte_range: Vec<u8> },
}

/// Room kept in a PDF for the CMS: the signature, two certificates and the attributes take about 4 KB,
/// a time-stamp token with its two certificates about 3 KB more.
pub(in crate::service) fn pdf_room(level: ConformanceLevel) -> usize {
    if level.has_signature_time_stamp() {
        24 * 1024
    } else {
        12 * 1024
    }
}

/// Signs every item, in order. Nothing is signed unless the whole request is authorised. The caller's
/// token is judged first, read with the credential and the SAD (see `caller_credential_and_sad`).
pub fn sign_doc(
    services: &Services,
    bearer: &Bearer,
    request: SignDocRequest,
) -> Result<SignedDocuments, ServiceError> {
    let sad_digest = secrets::token_digest(request.sad.expose_secret());
    let shape = super::request_shape(
        services,
        &request.credential_id,
        request.items.len(),
        "Empty documentDigests and documents objects",
        "signatures",
    );
    let (principal, found) =
        super::caller_credential_and_sad(services, bearer, shape, &request.credential_id, &sad_digest)?;
    let credential_id = request.credential_id.clone();
    let result = found.and_then(|found| sign_doc_found(services, &principal, found, sad_digest, request));
    if let Err(e) = &result {
        services.audit_refusal(AuditEventName::SignaturesSignDoc, Some(&principal.user_id), Some(&credential_id), e);
    }
    result
}

/// signDoc once the caller and the request's shape passed: `found` is the caller's credential and the
/// SAD as they were read. The request is taken whole, so that a PDF's bytes go to its prepared file
/// without a copy.
fn sign_doc_found(
    services: &Services,
    principal: &Principal,
    (row, sad_row): super::Found,
    sad_digest: String,
    request: SignDocRequest,
) -> Result<SignedDocuments, ServiceError> {
    let now = services.now();
    let kind = key_kind(&row)?;
    let certificate = x509_cert::Certificate::from_der(&row.certificate)
        .map_err(|e| ServiceError::internal_while("the credential's stored certificate", e))?;
    let signer = PdfSigner { name: &signer_name(&certificate), now };
    let plans = request.items.into_iter().map(|item| plan(kind, item)).collect::<Result<Vec<_>, _>>()?;
    if plans.iter().any(|p| p.item.level.has_signature_time_stamp()) && !services.tsa.unit.valid_at(now) {
        return Err(ServiceError::InvalidRequest(
            "Invalid parameter conformance_level: Ades-B-T is not available now (the time-stamping unit's \
             certificate is not valid); ask for Ades-B-B"
                .into(),
        ));
    }
    ensure_usable(&row, now)?;
    let sad_row = usable_sad(sad_row, now)?;
    // Before any PDF is read (the costly part a stranger could ask for): the SAD must cover every
    // document and digest now. The ledger judges it again when it spends.
    let wanted: Vec<Vec<u8>> = plans.iter().map(|p| p.digest.clone()).collect();
    if sad::take(&sad::decode_hashes(&sad_row.hashes), &wanted).is_none() {
        return Err(ServiceError::DocumentNotAuthorized);
    }
    let mut plans = plans;
    for plan in &mut plans {
        prepare_pdf(plan, &signer)?;
    }
    let key = KeyId::from_hex(&row.key_id).ok_or_else(|| ServiceError::invariant("stored key id"))?;
    let public_key = certificate.tbs_certificate().subject_public_key_info().clone();
    let count = i32::try_from(plans.len()).map_err(ServiceError::internal)?;
    let stamps: usize = plans.iter().map(|p| p.item.level.time_stamps()).sum();
    let quota = count + i32::try_from(stamps).map_err(ServiceError::internal)?;
    let hashes: Vec<Vec<u8>> = plans.iter().map(|p| p.digest.clone()).collect();
    let certificate = row.certificate.clone();
    let credential_id = row.id.clone();
    let mut detail = describe(&plans, stamps);
    if let Some(origin) = &request.origin {
        detail = format!("{detail} ({origin})");
    }
    services
        .ledger
        .write(
            services,
            reservation::Reservation {
                principal: principal.clone(),
                credential: row,
                sad_digest: sad_digest.clone(),
                sad: sad_row,
                hashes: hashes.clone(),
                count,
                quota,
                now,
                event: AuditEventName::SignaturesSignDoc,
                detail,
                request_id: crate::telemetry::current_request_id(),
            },
        )
        // §11.11: a document or digest the SAD does not cover is 403 invalid_hash.
        .map_err(|e| match e {
            ServiceError::HashNotAuthorized => ServiceError::DocumentNotAuthorized,
            other => other,
        })?;
    // The HSM (and the TSA) work outside the transaction and without a pooled connection held.
    let signer_for = |scheme| HsmSigner::new(&services.keystore, key.clone(), scheme, public_key.clone());
    let schemes: Vec<&'static str> = plans.iter().map(|p| p.scheme.name()).collect();
    let made = plans
        .into_iter()
        .map(|plan| {
            make(services, &signer_for, &certificate, plan)
                .map_err(|e| e.in_context(format!("signDoc with credential {credential_id}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|made| {
            // Read after the signatures were made: the statuses it holds are later than they are.
            let validation_info = if request.return_validation_info {
                let time_stamped = made.iter().any(|(_, stamps)| !stamps.is_empty());
                Some(
                    validation_data::for_signature(services, &certificate, time_stamped)?
                        .beyond_the_signature(services),
                )
            } else {
                None
            };
            let stamps: Vec<&SignatureTimeStamp> = made.iter().flat_map(|(_, stamps)| stamps).collect();
            timestamps::record_signature_time_stamps(services, principal, &credential_id, &stamps)?;
            Ok((made, validation_info))
        });
    match made {
        Ok((made, validation_info)) => {
            for scheme in schemes {
                METRICS.signatures.with_label_values(&[scheme, "csc_v2_signdoc"]).inc();
            }
            Ok(SignedDocuments { signed: made.into_iter().map(|(signed, _)| signed).collect(), validation_info })
        }
        Err(e) => {
            refund(
                services,
                Spent {
                    principal,
                    credential_id: &credential_id,
                    sad_digest: &sad_digest,
                    hashes: &hashes,
                    count,
                    quota,
                    event: AuditEventName::SignaturesSignDoc,
                    cause: e.reason(),
                },
            );
            Err(e)
        }
    }
}

/// Checks one item against the credential's key and works out what the SAD must cover.
fn plan(kind: crate::domain::KeyKind, item: ToSign) -> Result<Plan, ServiceError> {
    let scheme = resolve_scheme(kind, &item.sign_algo, item.hash_algo.as_deref(), item.sign_algo_params.as_deref())?;
    let whole_pdf = matches!((&item.input, item.format), (Input::Document(_), SignatureFormat::Pades));
    let offered = match item.format {
        // B-LTA of a CAdES signature needs an archive time-stamp, which rssp does not make.
        SignatureFormat::Cades => item.level <= ConformanceLevel::BLt,
        // A PAdES CMS goes into the client's PDF, whose DSS the client writes.
        SignatureFormat::Pades => whole_pdf || item.level <= ConformanceLevel::BT,
    };
    if !offered {
        return Err(ServiceError::InvalidRequest(format!(
            "Invalid parameter conformance_level: {} is not offered for this signature; a whole PDF (P in \
             documents) is made up to Ades-B-LTA, a CAdES signature up to Ades-B-LT, a PAdES CMS at Ades-B-B or \
             Ades-B-T (with returnValidationInfo, the client adds the validation data)",
            item.level
        )));
    }
    let hash = scheme.hash();
    let (packaging, digest, pdf) = match (&item.input, item.format) {
        (Input::Digest(digest), format) => {
            if digest.len() != hash.digest_len() {
                return Err(ServiceError::DigestLength);
            }
            let packaging = match (format, item.packaging) {
                (SignatureFormat::Cades, None | Some(Packaging::Detached)) => Packaging::Detached,
                (SignatureFormat::Cades, Some(_)) => {
                    return Err(ServiceError::InvalidRequest(
                        "Invalid parameter signed_envelope_property: a CAdES signature of a digest is Detached; \
                         send the document in documents for an Attached one"
                            .into(),
                    ))
                }
                (SignatureFormat::Pades, packaging) => packaging.unwrap_or(Packaging::Certification),
            };
            (packaging, digest.clone(), WholePdf::No)
        }
        (Input::Document(document), _) if document.is_empty() => {
            return Err(ServiceError::InvalidRequest("Invalid Base64 documents string parameter: empty".into()));
        }
        (Input::Document(document), SignatureFormat::Cades) => {
            (item.packaging.unwrap_or(Packaging::Attached), hash.digest(document), WholePdf::No)
        }
        // The PDF is read later ([`prepare_pdf`]), once the SAD is known to cover it.
        (Input::Document(document), SignatureFormat::Pades) => {
            let mut original = hash.hasher();
            original.update(document);
            let digest = original.clone().finish();
            (item.packaging.unwrap_or(Packaging::Certification), digest, WholePdf::Digested(original))
        }
    };
    Ok(Plan { item, scheme, packaging, digest, pdf })
}

/// Writes a whole PDF's signature update, waiting for the CMS, and says whether it certifies.
fn prepare_pdf(plan: &mut Plan, signer: &PdfSigner<'_>) -> Result<(), ServiceError> {
    let (Input::Document(document), SignatureFormat::Pades) = (&mut plan.item.input, plan.item.format) else {
        return Ok(());
    };
    let fields = pades::SignatureFields {
        signer_name: signer.name,
        signing_time: signer.now,
        reason: plan.item.look.reason.as_deref(),
        location: plan.item.look.location.as_deref(),
        // By default the first signature certifies (form filling and signing stay allowed) and later ones
        // approve.
        certify: plan.item.packaging.map(|p| p == Packaging::Certification),
        visible: plan.item.look.visible,
        reserved: pdf_room(plan.item.level),
    };
    // The document is taken, not copied: the prepared file starts with its bytes.
    let prepared = pades::prepare(std::mem::take(document), &fields)
        .map_err(|refusal| ServiceError::InvalidRequest(format!("Invalid array parameter documents: {refusal}")))?;
    plan.packaging = if prepared.certifies { Packaging::Certification } else { Packaging::Revision };
    let WholePdf::Digested(original) = std::mem::replace(&mut plan.pdf, WholePdf::No) else {
        return Err(ServiceError::invariant("a whole PDF prepared before it was digested"));
    };
    let byte_range = prepared.byte_range_digest_from_original(original)?;
    plan.pdf = WholePdf::Prepared { pdf: prepared, byte_range };
    Ok(())
}

/// Who signs a PDF, and when, as its signature dictionary says.
struct PdfSigner<'a> {
    name: &'a str,
    now: i64,
}

/// The signer's name for a PDF: the certificate's common name (its whole subject if it has none).
pub(in crate::service) fn signer_name(certificate: &x509_cert::Certificate) -> String {
    let subject = certificate.tbs_certificate().subject();
    let common_name = subject.iter().find(|atv| atv.oid == const_oid::db::rfc4519::CN);
    common_name
        .and_then(|atv| {
            atv.value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_string())
                .or_else(|_| atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>().map(|s| s.as_str().to_string()))
                .ok()
        })
        .unwrap_or_else(|| subject.to_string())
}

/// Makes one signature, with its time-stamps (B-T, B-LTA) and validation data (B-LT).
fn make<'k>(
    services: &Services,
    signer_for: &impl Fn(SignatureScheme) -> Result<HsmSigner<'k>, PkiError>,
    certificate: &[u8],
    plan: Plan,
) -> Result<(Signed, Vec<SignatureTimeStamp>), ServiceError> {
    let signer = signer_for(plan.scheme)?;
    let hash = plan.scheme.hash();
    let (prepared, byte_range) = match plan.pdf {
        WholePdf::Prepared { pdf, byte_range } => (Some(pdf), Some(byte_range)),
        WholePdf::No => (None, None),
        WholePdf::Digested(_) => return Err(ServiceError::invariant("a whole PDF signed before it was prepared")),
    };
    let content = match (&plan.item.input, plan.packaging, &byte_range) {
        (_, _, Some(byte_range)) => Content::Detached { digest: byte_range },
        (Input::Document(document), Packaging::Attached, None) => {
            Content::Attached { content: document, digest: &plan.digest }
        }
        _ => Content::Detached { digest: &plan.digest },
    };
    let baseline = match plan.item.format {
        SignatureFormat::Cades => Baseline::Cades { signing_time: services.now() },
        // EN 319 142-1 §5.4: the time is the PDF's /M.
        SignatureFormat::Pades => Baseline::PadesCms,
    };
    let chain = [services.ca.issuing.certificate_der.clone()];
    let signed = cades::Signed { certificate_der: certificate, chain_der: &chain, content, baseline };
    let mut stamps = Vec::new();
    let cms = if plan.item.level.has_signature_time_stamp() {
        cades::sign_b_t(&signer, signed, |signature_value| {
            let made = timestamps::signature_time_stamp(services, hash, signature_value)?;
            let token = made.token.clone();
            stamps.push(made);
            Ok::<_, ServiceError>(token)
        })?
    } else {
        cades::sign_b_b(&signer, signed)?
    };
    let Some(prepared) = prepared else {
        let cms = if plan.item.level == ConformanceLevel::BLt {
            // CAdES-B-LT: what validates the signature and its time-stamp later, read now that both exist.
            let data = validation_data::for_signature(services, certificate, true)?;
            cades::with_validation_data(&cms, &data.certificates, &data.ocsp, &data.crls)?
        } else {
            cms
        };
        return Ok(match plan.packaging {
            Packaging::Attached => (Signed::DocumentWithSignature(cms), stamps),
            _ => (Signed::SignatureObject(cms), stamps),
        });
    };
    let mut pdf = prepared.finish(&cms)?;
    if plan.item.level >= ConformanceLevel::BLt {
        // B-LT: what validates the signature and its time-stamp later, read now that both exist.
        let data = validation_data::for_signature(services, certificate, true)?;
        pdf = pades::with_dss(pdf, &data.certificates, &data.ocsp, &data.crls).map_err(in_our_pdf)?;
    }
    if plan.item.level == ConformanceLevel::BLta {
        // B-LTA: a document time-stamp over all of it.
        let prepared = pades::prepare_document_time_stamp(pdf, DOCUMENT_TIME_STAMP_ROOM).map_err(in_our_pdf)?;
        let made = timestamps::document_time_stamp(services, hash, &prepared.byte_range_digest(hash))?;
        pdf = prepared.finish(&made.token)?;
        stamps.push(made);
    }
    Ok((Signed::DocumentWithSignature(pdf), stamps))
}

/// Room kept for a document time-stamp token (with the TSA's and the issuing CA's certificates).
const DOCUMENT_TIME_STAMP_ROOM: usize = 12 * 1024;

/// A PDF rssp itself just wrote that it cannot extend is its own failure, not the client's.
fn in_our_pdf(refusal: pades::PdfRefusal) -> ServiceError {
    ServiceError::internal_while("extending the PDF rssp signed", refusal)
}

/// The audit record's words: how many of each kind of signature, and the digest each one covers (of
/// the document or digest sent: what the SAD bound), never a secret.
fn describe(plans: &[Plan], stamps: usize) -> String {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for p in plans {
        let input = match p.item.input {
            Input::Digest(_) => "digest",
            Input::Document(_) => "document",
        };
        let kind = format!("{}/{}/{}/{} of a {input}", p.item.format, p.item.level, p.packaging, p.scheme.name());
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let kinds: Vec<String> = kinds.into_iter().map(|(kind, n)| format!("{n} {kind}")).collect();
    let digests: Vec<String> = plans.iter().map(|p| hex::encode(&p.digest)).collect();
    format!("signatures={} time-stamps={stamps}: {}; digests {}", plans.len(), kinds.join(", "), digests.join(","))
}
