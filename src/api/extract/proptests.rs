//! Property tests of what a client sends: base64 hashes and the JSON bodies of the CSC methods (both
//! dialects). Any input is refused with a CSC `invalid_request` (400) or taken, never a panic, and
//! what is taken holds exactly what the body said.

use actix_web::http::StatusCode;
use base64::Engine;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::{decode_base64, decode_hashes, encode_base64, parse_json, MAX_JSON_DEPTH};
use crate::api::error::ApiError;
use crate::api::{csc_v1, csc_v2};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

fn is_clean_refusal(error: &ApiError) -> bool {
    error.status == StatusCode::BAD_REQUEST && error.error == "invalid_request"
}

/// Base64 text: mostly of the alphabet (padded or not), sometimes anything.
fn base64_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| encode_base64(&b)),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| encode_base64(&b).trim_end_matches('=').to_string()),
        "[A-Za-z0-9+/=]{0,90}",
        any::<String>(),
    ]
}

/// JSON leaves and small trees, of every type.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        base64_text().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The field names of the CSC requests, and others.
fn field_name() -> impl Strategy<Value = String> {
    let known = vec![
        "credentialID",
        "SAD",
        "hash",
        "hashes",
        "hashAlgo",
        "hashAlgorithmOID",
        "signAlgo",
        "signAlgoParams",
        "numSignatures",
        "OTP",
        "PIN",
        "authData",
        "id",
        "value",
        "description",
        "clientData",
        "token",
        "token_type_hint",
        "refresh_token",
        "rememberMe",
        "maxResults",
        "pageToken",
        "userID",
        "certificates",
        "certInfo",
        "authInfo",
        "lang",
        "operationMode",
        "validity_period",
        "response_uri",
        "credentialInfo",
    ];
    prop_oneof![3 => prop::sample::select(known).prop_map(str::to_string), 1 => any::<String>()]
}

/// A request-like body: an object of CSC fields (any values), or any JSON at all.
fn json_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::btree_map(field_name(), json_value(), 0..8)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_value(),
    ]
}

/// Bytes of a body: JSON, JSON cut short or with a byte changed, or any bytes.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_body().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (json_body(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, byte)| {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            bytes
        }),
        (json_body(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            bytes.truncate(cut.index(bytes.len()));
            bytes
        }),
        (1..MAX_JSON_DEPTH + 8).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Parses `body` as `T`: taken only when the body is empty or begins with a well-formed JSON value,
/// refused cleanly otherwise. (serde_json skips the fields a type does not have without checking their
/// UTF-8 or the range of their numbers, and nothing reads past the value: none of that reaches the typed
/// value. So "well-formed" is judged as serde_json skips a value, not by building one: a number such as
/// 1e400 in an unknown field is well-formed JSON that no f64 holds.)
fn parse_as<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, TestCaseError> {
    match parse_json::<T>(body, Some("application/json"), "/csc/v1/signatures/signHash") {
        Ok(value) => {
            let blank = body.iter().all(u8::is_ascii_whitespace);
            let first = serde_json::Deserializer::from_slice(body).into_iter::<serde::de::IgnoredAny>().next();
            prop_assert!(blank || matches!(first, Some(Ok(_))), "taken but not JSON");
            Ok(Some(value))
        }
        Err(error) => {
            prop_assert!(is_clean_refusal(&error), "{error:?}");
            Ok(None)
        }
    }
}

/// `body[name]` as the typed field would hold it: absent or null is None.
fn field<T: DeserializeOwned>(body: &Value, name: &str) -> Option<T> {
    body.get(name).filter(|v| !v.is_null()).map(|v| serde_json::from_value(v.clone()).unwrap())
}

/// A well-typed signHash or authorize body (each field present or not), with extra fields of any kind.
fn typed_body(hashes_field: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::option::of(any::<String>()),
        prop::option::of(prop::collection::vec(base64_text(), 0..4)),
        prop::option::of("[0-9.]{1,30}"),
        prop::option::of(any::<i32>()),
        prop::collection::btree_map("x[a-z]{0,6}", json_value(), 0..3),
    )
        .prop_map(move |(credential, hashes, algo, num, extra)| {
            let mut body: Map<String, Value> = extra.into_iter().collect();
            let mut put = |name: &str, value: Option<Value>| {
                if let Some(value) = value {
                    body.insert(name.to_string(), value);
                }
            };
            put("credentialID", credential.map(Value::from));
            put(hashes_field, hashes.map(|h| json!(h)));
            put("signAlgo", algo.map(Value::from));
            put("numSignatures", num.map(Value::from));
            Value::Object(body)
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn base64_is_decoded_only_in_its_canonical_form(text in base64_text()) {
        match decode_base64(&text, "hash") {
            Ok(bytes) => {
                let again = encode_base64(&bytes);
                prop_assert!(again == text || again.trim_end_matches('=') == text, "{text:?} read as {again:?}");
            }
            Err(error) => {
                prop_assert!(is_clean_refusal(&error), "{error:?}");
                prop_assert!(error.description.contains("hash"), "{}", error.description);
            }
        }
    }

    #[test]
    fn base64_is_read_as_the_base64_crate_reads_it(text in base64_text()) {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        let reference = STANDARD.decode(&text).or_else(|_| STANDARD_NO_PAD.decode(&text)).ok();
        prop_assert_eq!(decode_base64(&text, "hash").ok(), reference);
    }

    #[test]
    fn every_digest_survives_base64_padded_or_not(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let padded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        prop_assert_eq!(decode_base64(&padded, "hash").ok(), Some(bytes.clone()));
        prop_assert_eq!(decode_base64(padded.trim_end_matches('='), "hash").ok(), Some(bytes));
    }

    #[test]
    fn a_list_of_hashes_is_taken_whole_or_refused(texts in prop::collection::vec(base64_text(), 0..6)) {
        let each: Vec<_> = texts.iter().map(|t| decode_base64(t, "hash").ok()).collect();
        match decode_hashes(&texts, "hash") {
            Ok(hashes) => prop_assert_eq!(Some(hashes), each.into_iter().collect::<Option<Vec<_>>>()),
            Err(error) => {
                prop_assert!(is_clean_refusal(&error), "{error:?}");
                prop_assert!(each.iter().any(Option::is_none));
            }
        }
    }

    #[test]
    fn any_body_of_a_csc_v1_method_is_taken_or_refused_cleanly(body in body_bytes()) {
        parse_as::<csc_v1::InfoRequest>(&body)?;
        parse_as::<csc_v1::LoginRequest>(&body)?;
        parse_as::<csc_v1::RevokeRequest>(&body)?;
        parse_as::<csc_v1::ListRequest>(&body)?;
        parse_as::<csc_v1::CredentialInfoRequest>(&body)?;
        parse_as::<csc_v1::AuthorizeRequestBody>(&body)?;
        parse_as::<csc_v1::ExtendTransactionRequest>(&body)?;
        parse_as::<csc_v1::SignHashRequestBody>(&body)?;
    }

    #[test]
    fn any_body_of_a_csc_v2_method_is_taken_or_refused_cleanly(body in body_bytes()) {
        parse_as::<csc_v2::InfoRequest>(&body)?;
        parse_as::<csc_v2::LoginRequest>(&body)?;
        parse_as::<csc_v2::RevokeRequest>(&body)?;
        parse_as::<csc_v2::ListRequest>(&body)?;
        parse_as::<csc_v2::CredentialInfoRequest>(&body)?;
        parse_as::<csc_v2::AuthorizeRequestBody>(&body)?;
        parse_as::<csc_v2::ExtendTransactionRequest>(&body)?;
        parse_as::<csc_v2::SignHashRequestBody>(&body)?;
        parse_as::<super::super::sign_doc::SignDocRequestBody>(&body)?;
    }

    #[test]
    fn a_well_typed_sign_hash_body_is_taken_as_written(v1 in typed_body("hash"), v2 in typed_body("hashes")) {
        let bytes = serde_json::to_vec(&v1).unwrap();
        let taken = parse_as::<csc_v1::SignHashRequestBody>(&bytes)?.expect("a well-typed v1 signHash body");
        prop_assert_eq!(taken.credential_id, field(&v1, "credentialID"));
        prop_assert_eq!(taken.hash, field(&v1, "hash"));
        prop_assert_eq!(taken.sign_algo, field(&v1, "signAlgo"));
        let bytes = serde_json::to_vec(&v2).unwrap();
        let taken = parse_as::<csc_v2::SignHashRequestBody>(&bytes)?.expect("a well-typed v2 signHash body");
        prop_assert_eq!(taken.credential_id, field(&v2, "credentialID"));
        prop_assert_eq!(taken.hashes, field(&v2, "hashes"));
        prop_assert_eq!(taken.sign_algo, field(&v2, "signAlgo"));
    }

    #[test]
    fn a_well_typed_authorize_body_is_taken_as_written(v1 in typed_body("hash"), v2 in typed_body("hashes")) {
        let bytes = serde_json::to_vec(&v1).unwrap();
        let taken = parse_as::<csc_v1::AuthorizeRequestBody>(&bytes)?.expect("a well-typed v1 authorize body");
        prop_assert_eq!(taken.credential_id, field(&v1, "credentialID"));
        prop_assert_eq!(taken.num_signatures, field(&v1, "numSignatures"));
        prop_assert_eq!(taken.hash, field(&v1, "hash"));
        let bytes = serde_json::to_vec(&v2).unwrap();
        let taken = parse_as::<csc_v2::AuthorizeRequestBody>(&bytes)?.expect("a well-typed v2 authorize body");
        prop_assert_eq!(taken.credential_id, field(&v2, "credentialID"));
        prop_assert_eq!(taken.num_signatures, field(&v2, "numSignatures"));
        prop_assert_eq!(taken.hashes, field(&v2, "hashes"));
    }
}
