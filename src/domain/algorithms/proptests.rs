//! Property tests of the signature request's algorithm fields, above all the DER `signAlgoParams` of
//! RSASSA-PSS: any bytes are refused or resolved without a panic, and generated parameters are
//! accepted exactly when RFC 8017 and rssp's rules allow them (same hash for MGF1, salt no longer than
//! the modulus allows, trailer 1), with the hash and salt they name.

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Encode, Sequence};
use proptest::prelude::*;
use spki::AlgorithmIdentifierOwned;

use super::{max_pss_salt_len, resolve_scheme, AlgorithmError, HashAlgorithm, KeyKind, SignatureScheme};

// Wire forms (dotted OIDs), as a client sends them.
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const MGF1: &str = "1.2.840.113549.1.1.8";
const SHA1: &str = "1.3.14.3.2.26";
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA384: &str = "2.16.840.1.101.3.4.2.2";
const SHA512: &str = "2.16.840.1.101.3.4.2.3";

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// RSASSA-PSS-params (RFC 8017 A.2.3), written by the test itself.
#[derive(Sequence)]
struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_len: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

/// What a generated request asks for.
#[derive(Debug, Clone)]
struct Request {
    key: KeyKind,
    hash_algo: Option<&'static str>,
    hash: Option<&'static str>,
    hash_null_params: bool,
    mgf: Option<(&'static str, Option<&'static str>)>,
    salt_len: Option<u32>,
    trailer_field: Option<u32>,
}

impl Request {
    fn params_der(&self) -> Vec<u8> {
        let alg = |oid: &str, null: bool| AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid),
            parameters: null.then(|| AnyRef::NULL.into()),
        };
        let mask_gen = self.mgf.map(|(oid, hash)| AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap(oid),
            parameters: hash.map(|h| der::Any::encode_from(&alg(h, true)).unwrap()),
        });
        PssParams {
            hash: self.hash.map(|h| alg(h, self.hash_null_params)),
            mask_gen,
            salt_len: self.salt_len,
            trailer_field: self.trailer_field,
        }
        .to_der()
        .unwrap()
    }

    /// The answer the rules give.
    fn expected(&self) -> Result<SignatureScheme, AlgorithmError> {
        if !self.key.is_rsa() {
            return Err(AlgorithmError::InvalidSignAlgo);
        }
        let requested = match self.hash_algo {
            Some(oid) => Some(HashAlgorithm::from_oid(oid).ok_or(AlgorithmError::InvalidHashAlgo)?),
            None => None,
        };
        let hash = self.hash.and_then(HashAlgorithm::from_oid).ok_or(AlgorithmError::InvalidSignAlgoParams)?;
        let mgf_hash = match self.mgf {
            Some((MGF1, Some(h))) => HashAlgorithm::from_oid(h),
            _ => None,
        };
        let salt_len = self.salt_len.unwrap_or(20);
        if mgf_hash != Some(hash)
            || salt_len as usize > max_pss_salt_len(self.key.bits(), hash)
            || self.trailer_field.unwrap_or(1) != 1
        {
            return Err(AlgorithmError::InvalidSignAlgoParams);
        }
        if requested.is_some_and(|r| r != hash) {
            return Err(AlgorithmError::InvalidHashAlgo);
        }
        Ok(SignatureScheme::RsaPss { hash, salt_len })
    }
}

fn hash_oid() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![SHA256, SHA384, SHA512, SHA1, "1.2.3.4"])
}

/// Mostly MGF1, sometimes another algorithm in its place.
fn mgf_oid() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![MGF1, MGF1, MGF1, SHA256])
}

/// Any signature algorithm rssp offers for some key, or any text.
fn sign_algo() -> impl Strategy<Value = String> {
    let offered: Vec<&'static str> = KeyKind::ALL.iter().flat_map(|k| k.signature_algorithms()).copied().collect();
    prop_oneof![prop::sample::select(offered).prop_map(str::to_string), any::<String>()]
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(KeyKind::ALL.to_vec()),
        prop::option::weighted(0.3, hash_oid()),
        prop::option::weighted(0.95, hash_oid()),
        any::<bool>(),
        prop::option::weighted(0.95, (mgf_oid(), prop::option::weighted(0.95, hash_oid()))),
        prop::option::weighted(0.9, prop_oneof![0u32..500, any::<u32>()]),
        prop::option::weighted(0.2, 0u32..3),
    )
        .prop_map(|(key, hash_algo, hash, hash_null_params, mgf, salt_len, trailer_field)| Request {
            key,
            hash_algo,
            hash,
            hash_null_params,
            mgf,
            salt_len,
            trailer_field,
        })
}

/// An accepted answer is one the key can give.
fn sound(key: KeyKind, resolved: &Result<SignatureScheme, AlgorithmError>) -> bool {
    match resolved {
        Ok(SignatureScheme::RsaPss { hash, salt_len }) => {
            key.is_rsa() && *salt_len as usize <= max_pss_salt_len(key.bits(), *hash)
        }
        Ok(_) => false,
        Err(_) => true,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_pss_parameters_are_resolved_as_the_rules_say(request in request()) {
        let params = request.params_der();
        let resolved = resolve_scheme(request.key, RSASSA_PSS, request.hash_algo, Some(&params));
        prop_assert_eq!(resolved, request.expected());
    }

    #[test]
    fn any_bytes_as_pss_parameters_are_refused_or_sound(
        key in prop::sample::select(KeyKind::ALL.to_vec()),
        params in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let resolved = resolve_scheme(key, RSASSA_PSS, None, Some(&params));
        prop_assert!(sound(key, &resolved), "{resolved:?}");
    }

    #[test]
    fn damaged_pss_parameters_are_refused_or_sound(
        request in request(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut params = request.params_der();
        let at = at.index(params.len());
        params[at] = byte;
        let resolved = resolve_scheme(request.key, RSASSA_PSS, request.hash_algo, Some(&params));
        prop_assert!(sound(request.key, &resolved), "{resolved:?}");
        params.truncate(cut.index(params.len()));
        let resolved = resolve_scheme(request.key, RSASSA_PSS, request.hash_algo, Some(&params));
        prop_assert!(sound(request.key, &resolved), "{resolved:?}");
    }

    #[test]
    fn any_algorithm_names_are_refused_or_offered_by_the_key(
        key in prop::sample::select(KeyKind::ALL.to_vec()),
        sign_algo in sign_algo(),
        hash_algo in prop::option::of(prop_oneof![hash_oid().prop_map(str::to_string), any::<String>()]),
    ) {
        let resolved = resolve_scheme(key, &sign_algo, hash_algo.as_deref(), None);
        if let Ok(scheme) = resolved {
            prop_assert!(key.signature_algorithms().contains(&sign_algo.as_str()), "{sign_algo} for {key:?}");
            if let Some(requested) = hash_algo.as_deref() {
                prop_assert_eq!(Some(scheme.hash()), HashAlgorithm::from_oid(requested));
            }
        }
    }
}
