//! One signer for everything rssp signs with a key of its HSM, as an authority (certificates, CRLs,
//! time-stamps, OCSP responses) or for a person (CAdES signatures): the key behind the RustCrypto traits
//! that x509-cert's and cms's builders take (`Keypair`, `DynSignatureAlgorithmIdentifier`, `Signer`).
//!
//! The builders hand over the whole to-be-signed encoding; it is hashed here in software and only the
//! digest goes to the HSM (`KeyStore::sign_digests`), as for every other signature rssp makes. The HSM
//! call blocks: use the signer on a blocking thread, never in an async handler.

use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, ID_EC_PUBLIC_KEY, ID_RSASSA_PSS, ID_SHA_256,
    ID_SHA_384, ID_SHA_512, RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION,
    SHA_512_WITH_RSA_ENCRYPTION,
};
use der::asn1::BitString;
use der::{Decode, Document};
use spki::{AlgorithmIdentifierOwned, EncodePublicKey, SignatureBitStringEncoding, SubjectPublicKeyInfoOwned};
use x509_cert::builder::Builder;

use super::PkiError;
use crate::domain::{HashAlgorithm, SignatureScheme};
use crate::hsm::{HsmError, KeyId, KeyStore};

/// A key pair whose private key is in the HSM, with the scheme it signs with.
pub struct HsmSigner<'a> {
    keystore: &'a KeyStore,
    key: KeyId,
    scheme: SignatureScheme,
    algorithm: AlgorithmIdentifierOwned,
    public_key: HsmPublicKey,
}

/// The public key of an [`HsmSigner`]: what the builders read for the issuer's key identifier and the
/// CMS signer identifier.
#[derive(Debug, Clone)]
pub struct HsmPublicKey(SubjectPublicKeyInfoOwned);

impl HsmPublicKey {
    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.0
    }
}

impl EncodePublicKey for HsmPublicKey {
    fn to_public_key_der(&self) -> spki::Result<Document> {
        Ok(Document::encode_msg(&self.0)?)
    }
}

/// A signature value as the HSM returned it: PKCS#1 v1.5 or PSS bytes, or a DER `ECDSA-Sig-Value` (the
/// key store converts PKCS#11's raw r‖s). Each goes into a BIT STRING as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmSignature(Vec<u8>);

impl HsmSignature {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl SignatureBitStringEncoding for HsmSignature {
    fn to_bitstring(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl<'a> HsmSigner<'a> {
    /// A signer for the key `key` whose public key is `public_key`. The scheme must suit the key (RSA
    /// PKCS#1 v1.5 or RSASSA-PSS for an RSA key, ECDSA for an EC key). No authority key of rssp signs
    /// with PSS; a person's key may (a CAdES signature asked for with it).
    pub fn new(
        keystore: &'a KeyStore,
        key: KeyId,
        scheme: SignatureScheme,
        public_key: SubjectPublicKeyInfoOwned,
    ) -> Result<Self, PkiError> {
        use HashAlgorithm::*;
        // RFC 4055 §5: the sha*WithRSAEncryption identifiers carry NULL parameters; RFC 5758 §3.2: the
        // ECDSA ones carry none; RFC 4055 §3.1: id-RSASSA-PSS carries its RSASSA-PSS-params.
        let named = |oid| AlgorithmIdentifierOwned { oid, parameters: None };
        let with_null = |oid| AlgorithmIdentifierOwned { oid, parameters: Some(der::asn1::Null.into()) };
        let (key_algorithm, algorithm) = match scheme {
            SignatureScheme::RsaPkcs1(Sha256) => (RSA_ENCRYPTION, with_null(SHA_256_WITH_RSA_ENCRYPTION)),
            SignatureScheme::RsaPkcs1(Sha384) => (RSA_ENCRYPTION, with_null(SHA_384_WITH_RSA_ENCRYPTION)),
            SignatureScheme::RsaPkcs1(Sha512) => (RSA_ENCRYPTION, with_null(SHA_512_WITH_RSA_ENCRYPTION)),
            SignatureScheme::Ecdsa(Sha256) => (ID_EC_PUBLIC_KEY, named(ECDSA_WITH_SHA_256)),
            SignatureScheme::Ecdsa(Sha384) => (ID_EC_PUBLIC_KEY, named(ECDSA_WITH_SHA_384)),
            SignatureScheme::Ecdsa(Sha512) => (ID_EC_PUBLIC_KEY, named(ECDSA_WITH_SHA_512)),
            SignatureScheme::RsaPss { hash, salt_len } => {
                let parameters = der::Any::from_der(&crate::domain::algorithms::pss_params_der(hash, salt_len)?)?;
                (RSA_ENCRYPTION, AlgorithmIdentifierOwned { oid: ID_RSASSA_PSS, parameters: Some(parameters) })
            }
        };
        if public_key.algorithm.oid != key_algorithm {
            return Err(PkiError::Invalid(format!(
                "a {} signer for a key of algorithm {}",
                scheme.name(),
                public_key.algorithm.oid
            )));
        }
        Ok(HsmSigner { keystore, key, scheme, algorithm, public_key: HsmPublicKey(public_key) })
    }

    /// The signature algorithm, as certificates, CRLs and SignerInfos name it.
    pub fn algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.algorithm
    }

    /// The hash the scheme signs with.
    pub fn hash(&self) -> HashAlgorithm {
        self.scheme.hash()
    }

    /// The digest algorithm of that hash, as a CMS SignerInfo names it (RFC 5754 §2: no parameters).
    pub fn digest_algorithm(&self) -> AlgorithmIdentifierOwned {
        let oid = match self.scheme.hash() {
            HashAlgorithm::Sha256 => ID_SHA_256,
            HashAlgorithm::Sha384 => ID_SHA_384,
            HashAlgorithm::Sha512 => ID_SHA_512,
        };
        AlgorithmIdentifierOwned { oid, parameters: None }
    }

    /// Hashes `message` in software and signs the digest in the HSM. The HSM error is kept as it is, so
    /// that an HSM that is unavailable still reads as one to the caller.
    pub fn sign_message(&self, message: &[u8]) -> Result<HsmSignature, HsmError> {
        let digest = self.scheme.hash().digest(message);
        let signature = self
            .keystore
            .sign_digests(&self.key, self.scheme, &[digest])?
            .pop()
            .ok_or_else(|| HsmError::BadKeyMaterial("the HSM returned no signature".into()))?;
        Ok(HsmSignature(signature))
    }

    /// Builds and signs what an x509-cert builder makes (a certificate, a CRL). The same steps as
    /// `Builder::build`, with the HSM's error kept typed instead of flattened into a `signature::Error`.
    pub fn build<B: Builder>(&self, mut builder: B) -> Result<B::Output, PkiError> {
        let to_be_signed = builder.finalize(self)?;
        let signature = self.sign_message(&to_be_signed)?.to_bitstring()?;
        Ok(builder.assemble(signature, self)?)
    }
}

impl signature::Keypair for HsmSigner<'_> {
    type VerifyingKey = HsmPublicKey;

    fn verifying_key(&self) -> HsmPublicKey {
        self.public_key.clone()
    }
}

impl spki::DynSignatureAlgorithmIdentifier for HsmSigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.algorithm.clone())
    }
}

impl signature::Signer<HsmSignature> for HsmSigner<'_> {
    /// For builders that call the signer themselves (cms's `SignedDataBuilder`): the HSM error is the
    /// source of the `signature::Error`.
    fn try_sign(&self, message: &[u8]) -> Result<HsmSignature, signature::Error> {
        self.sign_message(message).map_err(signature::Error::from_source)
    }
}

#[cfg(test)]
mod tests {
    use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
    use const_oid::db::rfc5911::ID_DATA;
    use der::asn1::OctetString;
    use der::{Decode, Encode};
    use x509_cert::Certificate;

    use super::*;
    use crate::domain::KeyKind;
    use crate::pki::ca::distinguished_name;
    use crate::pki::test_support::{keystore, now, openssl_cms_verify, pem};
    use crate::pki::CertificateAuthority;

    /// A CMS SignedData over `content` made by cms's builder, carrying the signer's certificate and
    /// the CA certificates above it (`chain`, without the root).
    fn signed_data(signer: &HsmSigner<'_>, certificate_der: &[u8], chain: &[&[u8]], content: &[u8]) -> Vec<u8> {
        let certificate = Certificate::from_der(certificate_der).unwrap();
        let encapsulated = EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(der::Any::encode_from(&OctetString::new(content).unwrap()).unwrap()),
        };
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate().issuer().clone(),
            serial_number: certificate.tbs_certificate().serial_number().clone(),
        });
        let signer_info = SignerInfoBuilder::new(sid, signer.digest_algorithm(), &encapsulated, None).unwrap();
        let mut builder = SignedDataBuilder::new(&encapsulated);
        builder.add_digest_algorithm(signer.digest_algorithm()).unwrap();
        builder.add_certificate(CertificateChoices::Certificate(certificate)).unwrap();
        for ca in chain {
            builder.add_certificate(CertificateChoices::Certificate(Certificate::from_der(ca).unwrap())).unwrap();
        }
        builder.add_signer_info::<_, HsmSignature>(signer_info, signer).unwrap().build().unwrap().to_der().unwrap()
    }

    /// The signer that makes certificates and CRLs also serves cms's builder (time-stamps, OCSP and
    /// CAdES next): SignedData signed in the HSM by the issuing CA's key (ECDSA P-384, SHA-384) and by
    /// an RSA-2048 key with a certificate of that CA (PKCS#1 v1.5, SHA-256) verify with openssl up to
    /// the root.
    #[test]
    fn cms_signed_data_made_with_the_hsm_signer_verifies_with_openssl() {
        let _hsm = crate::hsm::test_support::exclusive();
        let keystore = keystore("pki-signer-cms");
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(&keystore, "Signer Test", "SI", "https://rssp.test", now()).unwrap();
        let root_pem = pem(dir.path(), "root", &ca.root.certificate_der);

        let ca_signer = ca.issuing.signer(&keystore).unwrap();
        let cms = signed_data(&ca_signer, &ca.issuing.certificate_der, &[], b"signed by the issuing CA");
        let content = openssl_cms_verify(dir.path(), "ec", &cms, &root_pem, None);
        assert_eq!(content.as_deref(), Some(&b"signed by the issuing CA"[..]));
        // The check has teeth: one changed byte of content and openssl refuses it.
        let mut tampered = cms.clone();
        let content = b"signed by the issuing CA";
        let at = tampered.windows(content.len()).position(|w| w == content).unwrap();
        tampered[at] ^= 0x20;
        assert_eq!(openssl_cms_verify(dir.path(), "ec-tampered", &tampered, &root_pem, None), None);

        let key = keystore.generate(KeyKind::Rsa2048, "cms-rsa").unwrap();
        let subject = distinguished_name("CMS Signer", None, "SI").unwrap();
        let issued =
            ca.issue_end_entity(&keystore, &key.public_key_der, subject, "https://rssp.test", now(), 30).unwrap();
        let rsa_signer = HsmSigner::new(
            &keystore,
            key.id,
            SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256),
            SubjectPublicKeyInfoOwned::from_der(&key.public_key_der).unwrap(),
        )
        .unwrap();
        let cms = signed_data(&rsa_signer, &issued.der, &[&ca.issuing.certificate_der], b"signed by an RSA key");
        let content = openssl_cms_verify(dir.path(), "rsa", &cms, &root_pem, None);
        assert_eq!(content.as_deref(), Some(&b"signed by an RSA key"[..]));
    }

    #[test]
    fn a_signer_refuses_a_scheme_of_the_other_key_type() {
        let _hsm = crate::hsm::test_support::exclusive();
        let keystore = keystore("pki-signer-refusals");
        let key = keystore.generate(KeyKind::EcP256, "refusals").unwrap();
        let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der).unwrap();
        let make = |scheme| HsmSigner::new(&keystore, key.id.clone(), scheme, spki.clone());
        assert!(make(SignatureScheme::RsaPkcs1(HashAlgorithm::Sha256)).is_err());
        assert!(make(SignatureScheme::RsaPss { hash: HashAlgorithm::Sha256, salt_len: 32 }).is_err(), "PSS is RSA's");
        let signer = make(SignatureScheme::Ecdsa(HashAlgorithm::Sha256)).unwrap();
        assert_eq!(signer.algorithm().oid, ECDSA_WITH_SHA_256);
        assert_eq!(signer.algorithm().parameters, None);
        assert_eq!(signer.digest_algorithm().oid, ID_SHA_256);
    }
}
