//! Every signature algorithm rssp offers, on every key kind it generates, through CSC v1 signHash:
//! RSA-2048 and RSA-3072 with PKCS#1 v1.5 (sha256/384/512WithRSA and rsaEncryption with hashAlgo) and
//! RSASSA-PSS (SHA-256/384/512, MGF1 with the same hash, salt as long as the digest); P-256 and P-384 with
//! ECDSA over SHA-256/384/512 digests. Each signature is verified in software against the certificate
//! rssp issued, so a module that signs with another mechanism, pads differently or hands back an EC point
//! or signature in another encoding fails here.
//!
//! This is the core of the second-PKCS#11 run (`hsm-config/second-pkcs11/run.sh`): the same file runs
//! against SoftHSM in the ordinary suite.

use crate::common::pki::spki_of;
use crate::common::*;
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Encode, Sequence};
use rssp::domain::{HashAlgorithm, KeyKind};
use serde_json::json;
use spki::AlgorithmIdentifierOwned;

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const MGF1: &str = "1.2.840.113549.1.1.8";

/// RSASSA-PSS-params (RFC 8017, A.2.3), to ask for PSS as a CSC client does.
#[derive(Sequence)]
struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    hash: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT")]
    mask_gen: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    salt_len: u32,
}

fn pss_params(hash: HashAlgorithm) -> String {
    let alg = |oid: &str| AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap(oid),
        parameters: Some(AnyRef::NULL.into()),
    };
    let mask_gen = AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new_unwrap(MGF1),
        parameters: Some(der::Any::encode_from(&alg(hash.oid())).unwrap()),
    };
    let params = PssParams { hash: alg(hash.oid()), mask_gen, salt_len: hash.digest_len() as u32 };
    b64(&params.to_der().unwrap())
}

/// What a request asks for, and how the answer is checked.
#[derive(Debug, Clone, Copy)]
enum Algorithm {
    /// sha256/384/512WithRSA: the hash is implied by the OID.
    RsaPkcs1(&'static str, HashAlgorithm),
    /// rsaEncryption with hashAlgo: rssp builds the DigestInfo.
    RsaEncryption(HashAlgorithm),
    RsaPss(HashAlgorithm),
    Ecdsa(&'static str, HashAlgorithm),
}

impl Algorithm {
    fn hash(self) -> HashAlgorithm {
        match self {
            Algorithm::RsaPkcs1(_, h) | Algorithm::RsaEncryption(h) | Algorithm::RsaPss(h) | Algorithm::Ecdsa(_, h) => {
                h
            }
        }
    }

    fn request(self, credential: &str, sad: &str, digest: &[u8]) -> serde_json::Value {
        let mut body = json!({"credentialID": credential, "SAD": sad, "hash": [b64(digest)]});
        match self {
            Algorithm::RsaPkcs1(oid, _) | Algorithm::Ecdsa(oid, _) => body["signAlgo"] = json!(oid),
            Algorithm::RsaEncryption(hash) => {
                body["signAlgo"] = json!(RSA_ENCRYPTION);
                body["hashAlgo"] = json!(hash.oid());
            }
            Algorithm::RsaPss(hash) => {
                body["signAlgo"] = json!(RSASSA_PSS);
                body["signAlgoParams"] = json!(pss_params(hash));
            }
        }
        body
    }
}

fn rsa_algorithms() -> Vec<Algorithm> {
    use HashAlgorithm::*;
    vec![
        Algorithm::RsaPkcs1("1.2.840.113549.1.1.11", Sha256),
        Algorithm::RsaPkcs1("1.2.840.113549.1.1.12", Sha384),
        Algorithm::RsaPkcs1("1.2.840.113549.1.1.13", Sha512),
        Algorithm::RsaEncryption(Sha256),
        Algorithm::RsaEncryption(Sha384),
        Algorithm::RsaEncryption(Sha512),
        Algorithm::RsaPss(Sha256),
        Algorithm::RsaPss(Sha384),
        Algorithm::RsaPss(Sha512),
    ]
}

fn ec_algorithms() -> Vec<Algorithm> {
    use HashAlgorithm::*;
    vec![
        Algorithm::Ecdsa("1.2.840.10045.4.3.2", Sha256),
        Algorithm::Ecdsa("1.2.840.10045.4.3.3", Sha384),
        Algorithm::Ecdsa("1.2.840.10045.4.3.4", Sha512),
    ]
}

fn verify(kind: KeyKind, spki: &[u8], algorithm: Algorithm, digest: &[u8], signature: &[u8]) {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use rsa::pkcs8::DecodePublicKey;
    let what = format!("{kind} {algorithm:?}");
    match kind {
        KeyKind::Rsa2048 | KeyKind::Rsa3072 => {
            let key = rsa::RsaPublicKey::from_public_key_der(spki).unwrap();
            let result = match algorithm {
                Algorithm::RsaPkcs1(_, hash) | Algorithm::RsaEncryption(hash) => match hash {
                    HashAlgorithm::Sha256 => key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature),
                    HashAlgorithm::Sha384 => key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature),
                    HashAlgorithm::Sha512 => key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature),
                },
                // The salt is as long as the digest; Pss::new expects exactly that.
                Algorithm::RsaPss(hash) => match hash {
                    HashAlgorithm::Sha256 => key.verify(rsa::pss::Pss::<sha2::Sha256>::new(), digest, signature),
                    HashAlgorithm::Sha384 => key.verify(rsa::pss::Pss::<sha2::Sha384>::new(), digest, signature),
                    HashAlgorithm::Sha512 => key.verify(rsa::pss::Pss::<sha2::Sha512>::new(), digest, signature),
                },
                Algorithm::Ecdsa(..) => panic!("{what}: not an RSA algorithm"),
            };
            result.unwrap_or_else(|e| panic!("{what}: signature does not verify: {e}"));
            assert_eq!(signature.len(), kind.bits() as usize / 8, "{what}: signature length");
        }
        KeyKind::EcP256 => {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki).unwrap();
            let sig = p256::ecdsa::Signature::from_der(signature).unwrap_or_else(|e| panic!("{what}: not DER: {e}"));
            key.verify_prehash(digest, &sig).unwrap_or_else(|e| panic!("{what}: signature does not verify: {e}"));
        }
        KeyKind::EcP384 => {
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(spki).unwrap();
            let sig = p384::ecdsa::Signature::from_der(signature).unwrap_or_else(|e| panic!("{what}: not DER: {e}"));
            key.verify_prehash(digest, &sig).unwrap_or_else(|e| panic!("{what}: signature does not verify: {e}"));
        }
    }
}

#[tokio::test]
async fn every_key_kind_signs_with_every_algorithm_it_offers() {
    let server = TestServer::start().await;
    for kind in KeyKind::ALL {
        let algorithms = if kind.is_rsa() { rsa_algorithms() } else { ec_algorithms() };
        let name = format!("algo-{kind}");
        let signer = server.provision(&name, kind, algorithms.len() as i32, None).await;
        let token = server.login("v1", &signer).await;
        let (status, info) = server
            .post(
                "/csc/v1/credentials/info",
                Some(&token),
                json!({"credentialID": signer.credential_id, "certificates": "single"}),
            )
            .await;
        assert_eq!(status, 200, "{info}");
        let spki = spki_of(info["cert"]["certificates"][0].as_str().unwrap());

        // What the key advertises is exactly what is tried below.
        let advertised: Vec<&str> =
            info["key"]["algo"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(advertised, kind.signature_algorithms(), "{kind}: advertised algorithms");

        // One authorisation for all the digests, one signHash per algorithm.
        let digests: Vec<Vec<u8>> =
            algorithms.iter().enumerate().map(|(i, a)| a.hash().digest(format!("{name}-{i}").as_bytes())).collect();
        let sad = server.authorize_v1(&token, &signer, &digests, digests.len()).await;
        for (algorithm, digest) in algorithms.iter().zip(&digests) {
            let body = algorithm.request(&signer.credential_id, &sad, digest);
            let (status, answer) = server.post("/csc/v1/signatures/signHash", Some(&token), body).await;
            assert_eq!(status, 200, "{kind} {algorithm:?}: {answer}");
            let signature = unb64(answer["signatures"][0].as_str().unwrap());
            verify(kind, &spki, *algorithm, digest, &signature);
        }
    }
}

#[tokio::test]
async fn a_signature_over_another_digest_does_not_verify() {
    // The oracle above can fail: a signature checked against a digest it was not made over is refused.
    let server = TestServer::start().await;
    for kind in [KeyKind::Rsa2048, KeyKind::EcP256] {
        let signer = server.provision(&format!("oracle-{kind}"), kind, 1, None).await;
        let token = server.login("v1", &signer).await;
        let (_, info) = server
            .post(
                "/csc/v1/credentials/info",
                Some(&token),
                json!({"credentialID": signer.credential_id, "certificates": "single"}),
            )
            .await;
        let spki = spki_of(info["cert"]["certificates"][0].as_str().unwrap());
        let algorithm = if kind.is_rsa() { rsa_algorithms()[6] } else { ec_algorithms()[0] };
        let digest = sha256(b"signed");
        let sad = server.authorize_v1(&token, &signer, std::slice::from_ref(&digest), 1).await;
        let (status, answer) = server
            .post("/csc/v1/signatures/signHash", Some(&token), algorithm.request(&signer.credential_id, &sad, &digest))
            .await;
        assert_eq!(status, 200, "{answer}");
        let signature = unb64(answer["signatures"][0].as_str().unwrap());
        let other = sha256(b"not signed");
        let refused = std::panic::catch_unwind(|| verify(kind, &spki, algorithm, &other, &signature));
        assert!(refused.is_err(), "{kind}: a signature verified over a digest it was not made over");
    }
}
