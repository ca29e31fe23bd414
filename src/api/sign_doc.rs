//! CSC v2 `signatures/signDoc` (v2.0.0.2 §11.11) on the wire: its request and answer, read strictly
//! within bounds. The body may weigh tens of megabytes (documents in base64), so no list in it is read
//! past [`MAX_ENTRIES`] elements and nothing is buffered whole on the way (no `flatten`, no untagged
//! enums): a body of millions of empty entries is refused while it is parsed, not after it was
//! allocated. Parsing (which decodes the documents' base64) and the signing run on the blocking pool;
//! the answer's documents are base64-encoded a slice at a time as they are sent ([`SlicedBody`]).

use std::fmt;
use std::marker::PhantomData;

use actix_web::web::{Bytes, Data};
use actix_web::{post, HttpResponse};
use secrecy::SecretString;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Dialect, ErrorBody};
use super::extract::{decode_base64, encode_base64, run_with_bearer, Authed, Base64Field, CscV2User, SignDocJson};
use super::large_body::{Piece, SlicedBody};
use crate::domain::ades::{ConformanceLevel, Packaging, SignatureFormat};
use crate::service::signing::{self, Input, PdfLook, SignDocRequest, Signed, SignedDocuments, ToSign};
use crate::service::{ServiceError, Services};

/// Most elements read of any list in a signDoc body (`documents`, `documentDigests`, `hashes`,
/// `signed_props`); the service then holds a request to `security.max_hashes_per_request` signatures.
pub const MAX_ENTRIES: usize = 10_000;

/// A list of at most [`MAX_ENTRIES`] elements, refused while it is read.
#[derive(Debug)]
pub struct Bounded<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Bounded<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(BoundedVisitor(PhantomData)).map(Bounded)
    }
}

struct BoundedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of at most {MAX_ENTRIES} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            if items.len() == MAX_ENTRIES {
                return Err(de::Error::invalid_length(MAX_ENTRIES + 1, &self));
            }
            items.push(item);
        }
        Ok(items)
    }
}

/// `documentDigests[].hashes`: an array in the specification's tables, a single string in one of its
/// samples; both are read.
#[derive(Debug)]
pub struct Hashes(pub Vec<String>);

impl<'de> Deserialize<'de> for Hashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HashesVisitor;
        impl<'de> Visitor<'de> for HashesVisitor {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a base64 string or an array of at most {MAX_ENTRIES} of them")
            }
            fn visit_str<E: de::Error>(self, one: &str) -> Result<Vec<String>, E> {
                Ok(vec![one.to_string()])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<String>, A::Error> {
                BoundedVisitor(PhantomData).visit_seq(seq)
            }
        }
        deserializer.deserialize_any(HashesVisitor).map(Hashes)
    }
}

/// `signed_props`: rssp adds no requested attribute yet, so only whether the list holds any is kept;
/// its elements are skipped, not stored.
#[derive(Debug, Default)]
pub struct SignedProps {
    pub any: bool,
}

impl<'de> Deserialize<'de> for SignedProps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropsVisitor;
        impl<'de> Visitor<'de> for PropsVisitor {
            type Value = bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of attributes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
                let mut any = false;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(any)
            }
        }
        deserializer.deserialize_seq(PropsVisitor).map(|any| SignedProps { any })
    }
}

/// An entry of `documentDigests`: digests the client made, each signed once.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2DocumentDigests)]
pub struct DocumentDigests {
    /// Base64 digests: of the content (CAdES) or of the prepared PDF's /ByteRange (PAdES). A single
    /// string is read as a list of one.
    #[schema(value_type = Option<Vec<String>>)]
    pub hashes: Option<Hashes>,
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    /// `C` (CAdES) or `P` (PAdES), in any letter case.
    pub signature_format: Option<String>,
    /// `Ades-B-B` (default) or `Ades-B-T`, in any letter case.
    pub conformance_level: Option<String>,
    #[serde(rename = "signAlgo")]
    pub sign_algo: Option<String>,
    #[serde(rename = "signAlgoParams")]
    pub sign_algo_params: Option<String>,
    /// Attributes to add: none are offered yet, so a non-empty list is refused.
    #[schema(value_type = Option<Vec<Object>>)]
    pub signed_props: Option<SignedProps>,
    /// CAdES: `Detached` (the only one for a digest); PAdES: `Certification` (default) or `Revision`.
    pub signed_envelope_property: Option<String>,
}

/// An entry of `documents`: a whole document, base64.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2Document)]
pub struct Document {
    /// The document, base64 (decoded as the body is read).
    #[schema(value_type = Option<String>)]
    pub document: Option<Base64Field>,
    /// `C` (CAdES) or `P` (PAdES: the PDF signed inside, invisibly), in any letter case.
    pub signature_format: Option<String>,
    /// `Ades-B-B` (default) or `Ades-B-T`; for a PDF also `Ades-B-LT` and `Ades-B-LTA`. In any letter case.
    pub conformance_level: Option<String>,
    #[serde(rename = "signAlgo")]
    pub sign_algo: Option<String>,
    #[serde(rename = "signAlgoParams")]
    pub sign_algo_params: Option<String>,
    /// The hash the document is digested with, where `signAlgo` does not imply one (`rsaEncryption`).
    /// Not in the specification's table for documents; read as in `documentDigests`.
    #[serde(rename = "hashAlgorithmOID")]
    pub hash_algorithm_oid: Option<String>,
    /// Attributes to add: none are offered yet, so a non-empty list is refused.
    #[schema(value_type = Option<Vec<Object>>)]
    pub signed_props: Option<SignedProps>,
    /// CAdES: `Attached` (default: the document inside the CMS) or `Detached` (a `.p7s`). PAdES:
    /// `Certification` or `Revision`; by default the PDF's first signature certifies it (form filling and
    /// signing stay allowed) and later ones approve.
    pub signed_envelope_property: Option<String>,
}

/// `signatures/signDoc` request (§11.11).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CscV2SignDocRequestBody)]
pub struct SignDocRequestBody {
    #[serde(rename = "credentialID")]
    pub credential_id: Option<String>,
    /// Every rssp credential is `eu_eidas_qes`: accepted beside `credentialID`, not instead of it.
    #[serde(rename = "signatureQualifier")]
    pub signature_qualifier: Option<String>,
    #[serde(rename = "SAD")]
    #[schema(value_type = Option<String>)]
    pub sad: Option<SecretString>,
    #[serde(rename = "documentDigests")]
    #[schema(value_type = Option<Vec<DocumentDigests>>)]
    pub document_digests: Option<Bounded<DocumentDigests>>,
    #[schema(value_type = Option<Vec<Document>>)]
    pub documents: Option<Bounded<Document>>,
    /// Only `S` (synchronous) is offered: `info.asynchronousOperationMode` is false.
    #[serde(rename = "operationMode")]
    pub operation_mode: Option<String>,
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub validity_period: Option<i64>,
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub response_uri: Option<String>,
    #[serde(rename = "clientData")]
    #[allow(dead_code)] // in the spec's request: accepted, not used
    pub client_data: Option<String>,
    /// Also read as `returnValidationInformation`. `true`: the answer's `validationInfo` holds the
    /// certificates, OCSP responses and CRLs the signatures do not carry.
    #[serde(rename = "returnValidationInfo", alias = "returnValidationInformation")]
    pub return_validation_info: Option<bool>,
}

/// `signatures/signDoc` response (§11.11): each list in the order of the request's signatures.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2SignDocResponse)]
pub struct SignDocResponse {
    /// Signed documents: for CAdES `Attached`, the CMS with the document inside. Absent when empty.
    #[serde(rename = "DocumentWithSignature", default, skip_serializing_if = "Vec::is_empty")]
    pub document_with_signature: Vec<String>,
    /// Signatures apart from what they sign: CAdES `Detached` (a `.p7s`), and the CMS of a PAdES
    /// signature for the client to embed. Absent when empty.
    #[serde(rename = "SignatureObject", default, skip_serializing_if = "Vec::is_empty")]
    pub signature_object: Vec<String>,
    /// With `returnValidationInfo`: what validates the signatures later and is not inside them.
    #[serde(rename = "validationInfo", default, skip_serializing_if = "Option::is_none")]
    pub validation_info: Option<ValidationInfo>,
}

/// `validationInfo` (§11.11): base64 DER, each list possibly empty.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = CscV2ValidationInfo)]
pub struct ValidationInfo {
    /// OCSPResponses: about the signer's certificate, the TSA's (when time-stamped) and the issuing CA's.
    pub ocsp: Vec<String>,
    /// CertificateLists: the issuing CA's CRL and the root's.
    pub crl: Vec<String>,
    /// Certificates not in the signatures: the root's and the OCSP responder's.
    pub certificates: Vec<String>,
}

/// How one entry's signatures are made, parsed.
struct Parameters {
    format: SignatureFormat,
    level: ConformanceLevel,
    packaging: Option<Packaging>,
    sign_algo: String,
    hash_algo: Option<String>,
    sign_algo_params: Option<Vec<u8>>,
}

impl Parameters {
    #[allow(clippy::too_many_arguments)] // the wire fields an entry shares, one by one
    fn parse(
        format: Option<String>,
        level: Option<String>,
        packaging: Option<String>,
        sign_algo: Option<String>,
        hash_algo: Option<String>,
        sign_algo_params: Option<String>,
        signed_props: Option<SignedProps>,
    ) -> Result<Parameters, ApiError> {
        let format = format.ok_or_else(|| ApiError::missing("signature_format"))?;
        let format = SignatureFormat::parse(&format).map_err(|_| ApiError::invalid("signature_format"))?;
        let level = match level {
            Some(level) => ConformanceLevel::parse(&level).map_err(|_| ApiError::invalid("conformance_level"))?,
            None => ConformanceLevel::BB,
        };
        let packaging = packaging
            .map(|text| Packaging::parse(format, &text).map_err(|_| ApiError::invalid("signed_envelope_property")))
            .transpose()?;
        if signed_props.is_some_and(|props| props.any) {
            return Err(ApiError::invalid_request(
                "Invalid parameter signed_props: no signed attributes can be added yet",
            ));
        }
        Ok(Parameters {
            format,
            level,
            packaging,
            sign_algo: sign_algo.ok_or_else(|| ApiError::missing("signAlgo"))?,
            hash_algo,
            sign_algo_params: sign_algo_params.map(|s| decode_base64(&s, "signAlgoParams")).transpose()?,
        })
    }

    fn to_sign(&self, input: Input) -> ToSign {
        ToSign {
            input,
            format: self.format,
            level: self.level,
            packaging: self.packaging,
            sign_algo: self.sign_algo.clone(),
            hash_algo: self.hash_algo.clone(),
            sign_algo_params: self.sign_algo_params.clone(),
            look: PdfLook::default(),
        }
    }
}

/// The signatures a signDoc asks for, in order: each hash of each `documentDigests` entry, or each
/// document.
fn items(
    digests: Option<Bounded<DocumentDigests>>,
    documents: Option<Bounded<Document>>,
) -> Result<Vec<ToSign>, ApiError> {
    let mut items = Vec::new();
    match (digests, documents) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request("Both documentDigests and documents parameters passed"));
        }
        (None, None) => return Err(ApiError::invalid_request("Empty documentDigests and documents objects")),
        (Some(Bounded(digests)), None) => {
            for entry in digests {
                let hashes = entry.hashes.ok_or_else(|| ApiError::missing("hashes"))?.0;
                if hashes.is_empty() {
                    return Err(ApiError::invalid_request("Invalid object parameter documentDigests: no hashes"));
                }
                let p = Parameters::parse(
                    entry.signature_format,
                    entry.conformance_level,
                    entry.signed_envelope_property,
                    entry.sign_algo,
                    entry.hash_algorithm_oid,
                    entry.sign_algo_params,
                    entry.signed_props,
                )?;
                for hash in hashes {
                    items.push(p.to_sign(Input::Digest(decode_base64(&hash, "hashes")?)));
                }
            }
        }
        (None, Some(Bounded(documents))) => {
            for entry in documents {
                let document = entry.document.ok_or_else(|| ApiError::missing("document"))?;
                let p = Parameters::parse(
                    entry.signature_format,
                    entry.conformance_level,
                    entry.signed_envelope_property,
                    entry.sign_algo,
                    entry.hash_algorithm_oid,
                    entry.sign_algo_params,
                    entry.signed_props,
                )?;
                items.push(p.to_sign(Input::Document(document.decoded("documents")?)));
            }
        }
    }
    if items.is_empty() {
        return Err(ApiError::invalid_request("Empty documentDigests and documents objects"));
    }
    Ok(items)
}

/// The request as the service takes it, from the body.
fn service_request(body: SignDocRequestBody) -> Result<SignDocRequest, ApiError> {
    if body.operation_mode.as_deref().is_some_and(|m| m != "S") {
        return Err(ApiError::invalid("operationMode"));
    }
    match (&body.credential_id, &body.signature_qualifier) {
        (_, Some(qualifier)) if !qualifier.eq_ignore_ascii_case("eu_eidas_qes") => {
            return Err(ApiError::invalid("signatureQualifier"));
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid_request(
                "Missing (or invalid type) string parameter credentialID: rssp does not choose a credential by \
                 signatureQualifier; send credentialID",
            ));
        }
        _ => {}
    }
    Ok(SignDocRequest {
        credential_id: body.credential_id.ok_or_else(|| ApiError::missing("credentialID"))?.into(),
        sad: body.sad.ok_or_else(|| ApiError::missing("SAD"))?,
        items: items(body.document_digests, body.documents)?,
        return_validation_info: body.return_validation_info.unwrap_or(false),
        origin: None,
    })
}

#[utoipa::path(post, operation_id = "csc_v2_sign_doc", tag = "CSC v2.0.0.2", request_body = SignDocRequestBody,
    security(("bearer" = [])),
    description = "AdES signatures made by rssp: CAdES (`C`) of whole documents (`documents`, Attached or \
        Detached) or of content digests (`documentDigests`, Detached); PAdES (`P`) of whole PDFs, signed \
        inside as an incremental update (`documents`, answered in `DocumentWithSignature`; refused: encrypted \
        PDFs, PDFs certified with no changes allowed, XFA forms, files that are not PDFs), and the CMS of a \
        PAdES signature for a PDF the client prepared (`documentDigests`: the digest of its /ByteRange; the \
        client embeds the CMS in /Contents). Levels `Ades-B-B` and `Ades-B-T` (a signature time-stamp from \
        rssp's TSA), for CAdES `Ades-B-LT` (the certificates, CRLs and OCSP responses in the SignedData), and \
        for whole PDFs `Ades-B-LT` (certificates, OCSP responses and CRLs in the PDF's DSS) and `Ades-B-LTA` \
        (then a document time-stamp). `returnValidationInfo` adds `validationInfo`. Under SCAL2 the SAD must be bound to each digest sent, or to each document's digest (of \
        the document as sent) made with the signature algorithm's hash. Each signature and each time-stamp \
        spends one transaction of the credential. B-LTA for CAdES, B-LT and B-LTA for a PAdES CMS, visible \
        PDF signatures (the portal's signing sessions make them) and signed_props are not offered and are \
        refused.",
    responses((status = 200, body = SignDocResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "`invalid_hash`: a document or digest the SAD is not bound to", body = ErrorBody),
        (status = 503, description = "Too many signDoc requests in flight, or the HSM is busy or unavailable", body = ErrorBody)))]
#[post("/signatures/signDoc")]
pub async fn sign_doc(
    services: Data<Services>,
    request: Authed<CscV2User, SignDocJson<SignDocRequestBody>>,
) -> Result<HttpResponse, ApiError> {
    let Authed(CscV2User(caller), SignDocJson { body, in_flight }) = request;
    // The documents were decoded as the body was parsed; up to 10,000 digests are decoded here, on the
    // blocking pool like the parse. The in-flight slot moves with the work, so that it is given back when
    // the work ends, even if the client left.
    let (request, in_flight) =
        actix_web::web::block(move || (service_request(body), in_flight)).await.map_err(|_| ApiError::internal())?;
    let request = request?;
    let response = run_with_bearer(&services, Dialect::V2, caller, move |s, bearer| {
        let _in_flight = in_flight;
        answer_body(signing::sign_doc(s, bearer, request)?)
    })
    .await?;
    Ok(HttpResponse::Ok().content_type("application/json").body(SlicedBody::of(response)))
}

/// The answer's JSON ([`SignDocResponse`]) as the pieces of a [`SlicedBody`]: the JSON around the
/// documents, and each signed document as it is, base64-encoded a slice at a time while it is sent
/// (base64 needs no escaping in JSON). Through serde_json a document of tens of megabytes would be
/// encoded into a string first, then scanned and copied. A test holds it equal to the struct serialized.
fn answer_body(made: SignedDocuments) -> Result<Vec<Piece>, ServiceError> {
    let (mut documents, mut objects) = (Vec::new(), Vec::new());
    for signed in made.signed {
        match signed {
            Signed::DocumentWithSignature(der) => documents.push(der),
            Signed::SignatureObject(der) => objects.push(der),
        }
    }
    let mut pieces = Vec::new();
    let mut text = String::from("{");
    let mut first = true;
    for (name, list) in [("DocumentWithSignature", documents), ("SignatureObject", objects)] {
        if list.is_empty() {
            continue;
        }
        if !std::mem::take(&mut first) {
            text.push(',');
        }
        text.push_str(&format!("\"{name}\":["));
        for (i, der) in list.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push('"');
            pieces.push(Piece::Plain(Bytes::from(std::mem::take(&mut text))));
            pieces.push(Piece::Base64(der));
            text.push('"');
        }
        text.push(']');
    }
    if let Some(data) = made.validation_info {
        if !first {
            text.push(',');
        }
        text.push_str("\"validationInfo\":");
        let all = |items: &[Vec<u8>]| items.iter().map(|i| encode_base64(i)).collect();
        let info =
            ValidationInfo { ocsp: all(&data.ocsp), crl: all(&data.crls), certificates: all(&data.certificates) };
        text.push_str(&serde_json::to_string(&info).map_err(ServiceError::internal)?);
    }
    text.push('}');
    pieces.push(Piece::Plain(Bytes::from(text)));
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer_bytes(made: SignedDocuments) -> Vec<u8> {
        actix_web::body::to_bytes(SlicedBody::of(answer_body(made).unwrap())).await.unwrap().to_vec()
    }

    #[actix_web::test]
    async fn the_answer_written_by_hand_is_the_response_serialized() {
        use crate::service::validation_data::ValidationData;
        let info =
            || ValidationData { certificates: vec![vec![1, 2, 3]], ocsp: vec![vec![4; 100], vec![]], crls: vec![] };
        let cases = [
            SignedDocuments { signed: vec![Signed::DocumentWithSignature(vec![0xfb; 1000])], validation_info: None },
            SignedDocuments {
                signed: vec![
                    Signed::SignatureObject(vec![1]),
                    Signed::DocumentWithSignature(vec![2, 3]),
                    Signed::SignatureObject(vec![0xff; 4]),
                ],
                validation_info: Some(info()),
            },
            SignedDocuments { signed: vec![Signed::SignatureObject(vec![7; 5])], validation_info: Some(info()) },
            // Two documents, one longer than a slice of the answer; an empty one.
            SignedDocuments {
                signed: vec![
                    Signed::DocumentWithSignature((0..2_000_001).map(|i| (i % 253) as u8).collect()),
                    Signed::DocumentWithSignature(vec![9; 10]),
                    Signed::DocumentWithSignature(vec![]),
                ],
                validation_info: None,
            },
        ];
        for made in cases {
            let by_hand: serde_json::Value = serde_json::from_slice(&answer_bytes(made.clone()).await).unwrap();
            let mut response =
                SignDocResponse { document_with_signature: vec![], signature_object: vec![], validation_info: None };
            for signed in &made.signed {
                match signed {
                    Signed::DocumentWithSignature(d) => response.document_with_signature.push(encode_base64(d)),
                    Signed::SignatureObject(d) => response.signature_object.push(encode_base64(d)),
                }
            }
            response.validation_info = made.validation_info.clone().map(|d| ValidationInfo {
                ocsp: d.ocsp.iter().map(|i| encode_base64(i)).collect(),
                crl: d.crls.iter().map(|i| encode_base64(i)).collect(),
                certificates: d.certificates.iter().map(|i| encode_base64(i)).collect(),
            });
            assert_eq!(by_hand, serde_json::to_value(&response).unwrap());
            assert_eq!(answer_bytes(made).await, serde_json::to_vec(&response).unwrap(), "byte for byte");
        }
    }

    fn parse(json: &str) -> Result<SignDocRequestBody, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn lists_are_refused_past_their_bound_while_they_are_read() {
        let many = format!(r#"{{"documents": [{}{{}}]}}"#, "{},".repeat(MAX_ENTRIES));
        let refused = parse(&many).unwrap_err();
        assert!(refused.to_string().contains("at most 10000"), "{refused}");
        let enough = format!(r#"{{"documents": [{}{{}}]}}"#, "{},".repeat(MAX_ENTRIES - 1));
        assert_eq!(parse(&enough).unwrap().documents.unwrap().0.len(), MAX_ENTRIES);
        let hashes = format!(r#"{{"documentDigests": [{{"hashes": [{}""]}}]}}"#, r#""","#.repeat(MAX_ENTRIES));
        assert!(parse(&hashes).is_err());
    }

    #[test]
    fn hashes_are_a_list_or_one_string_and_signed_props_only_says_whether_it_holds_any() {
        let body = parse(
            r#"{"documentDigests": [{"hashes": "aGFzaA==", "signed_props": []},
                                    {"hashes": ["YQ==", "Yg=="], "signed_props": [{"attribute_name": "x"}, 1, [2]]}]}"#,
        )
        .unwrap();
        let entries = body.document_digests.unwrap().0;
        assert_eq!(entries[0].hashes.as_ref().unwrap().0, vec!["aGFzaA==".to_string()]);
        assert_eq!(entries[1].hashes.as_ref().unwrap().0.len(), 2);
        assert!(!entries[0].signed_props.as_ref().unwrap().any);
        assert!(entries[1].signed_props.as_ref().unwrap().any);
        assert!(parse(r#"{"documentDigests": [{"hashes": 7}]}"#).is_err());
    }

    #[test]
    fn the_validation_info_flag_is_read_under_both_spellings() {
        for name in ["returnValidationInfo", "returnValidationInformation"] {
            let body = parse(&format!(r#"{{"{name}": true}}"#)).unwrap();
            assert_eq!(body.return_validation_info, Some(true), "{name}");
        }
    }
}
