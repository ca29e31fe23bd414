//! Loading (or, on first start, creating) the CA, and publishing its CRLs.

use crate::audit::{self, AuditEvent, Outcome};
use crate::config::Config;
use crate::db::{self, ca as store, credentials, DbConnection};
use crate::domain::KeyKind;
use crate::hsm::{KeyId, KeyStore};
use crate::pki::ca::CaLevel;
use crate::pki::{crl, CertificateAuthority, PkiError};

use super::{ServiceError, Services};

fn level(row: store::CaKeyRow) -> Result<CaLevel, PkiError> {
    let key =
        KeyId::from_hex(&row.key_id).ok_or_else(|| PkiError::Invalid(format!("stored key id of {}", row.name)))?;
    let kind: KeyKind = row.key_kind.parse().map_err(|e| PkiError::Invalid(format!("{e}")))?;
    CaLevel::from_parts(key, kind, row.certificate)
}

pub fn load_or_create(
    conn: &mut DbConnection,
    keystore: &KeyStore,
    config: &Config,
    public_url: &str,
    now: i64,
) -> Result<CertificateAuthority, PkiError> {
    if let (Some(root), Some(issuing)) = (store::find(conn, store::ROOT)?, store::find(conn, store::ISSUING)?) {
        let ca = CertificateAuthority { root: level(root)?, issuing: level(issuing)? };
        if !keystore.has_key(&ca.issuing.key)? {
            return Err(PkiError::Invalid(
                "the issuing CA key is not on the configured HSM token: wrong token label, or a database from another installation".into(),
            ));
        }
        return Ok(ca);
    }
    let ca = CertificateAuthority::create(keystore, &config.ca.organization, &config.ca.country, public_url, now)?;
    db::write_transaction(conn, |c| {
        for (name, level) in [(store::ROOT, &ca.root), (store::ISSUING, &ca.issuing)] {
            store::insert(
                c,
                &store::CaKeyRow {
                    name: name.to_string(),
                    key_kind: level.kind.to_string(),
                    key_id: level.key.to_hex(),
                    certificate: level.certificate_der.clone(),
                    created_at: now,
                },
            )?;
        }
        audit::record(
            c,
            now,
            AuditEvent {
                event: "ca.created",
                outcome: Outcome::Success,
                user_id: None,
                credential_id: None,
                detail: format!("root {} / issuing {}", ca.root.name, ca.issuing.name),
            },
        )
    })?;
    Ok(ca)
}

/// Which CA a CRL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlIssuer {
    Root,
    Issuing,
}

/// A freshly signed CRL (DER). The root has issued only the issuing CA, which is never revoked here.
pub fn current_crl(services: &Services, issuer: CrlIssuer) -> Result<Vec<u8>, ServiceError> {
    let now = services.now();
    match issuer {
        CrlIssuer::Root => Ok(crl::build(services.ca_keys(), &services.ca.root, &[], now)?),
        CrlIssuer::Issuing => {
            let revoked = credentials::revoked(&mut *services.conn()?)?;
            Ok(crl::build(services.ca_keys(), &services.ca.issuing, &revoked, now)?)
        }
    }
}
