//! Loading (or, on first start, creating) the CA, and publishing its CRLs.

use crate::audit::{self, AuditEvent, Outcome};
use crate::config::Config;
use crate::db::{self, ca as store, credentials, crls, DbConnection};
use crate::domain::KeyKind;
use crate::domain::{AuditEventName, CaName};
use crate::hsm::{KeyId, KeyStore};
use crate::pki::ca::CaLevel;
use crate::pki::{crl, CertificateAuthority, PkiError};

use super::{ServiceError, Services, StartError};

fn level(row: store::CaKeyRow) -> Result<CaLevel, StartError> {
    let key =
        KeyId::from_hex(&row.key_id).ok_or_else(|| PkiError::Invalid(format!("stored key id of {}", row.name)))?;
    let kind: KeyKind =
        row.key_kind.parse().map_err(|e| StartError::failed(format!("stored key kind of the {} CA", row.name), e))?;
    Ok(CaLevel::from_parts(key, kind, row.certificate)?)
}

pub(crate) fn load_or_create(
    conn: &mut DbConnection,
    keystore: &KeyStore,
    config: &Config,
    public_url: &str,
    now: i64,
) -> Result<CertificateAuthority, StartError> {
    if let (Some(root), Some(issuing)) = (store::find(conn, CaName::Root)?, store::find(conn, CaName::Issuing)?) {
        let ca = CertificateAuthority { root: level(root)?, issuing: level(issuing)?, qc_sscd: config.qc_sscd() };
        if !keystore.has_key(&ca.issuing.key).map_err(PkiError::from)? {
            return Err(PkiError::Invalid(
                "the issuing CA key is not on the configured HSM token: wrong token label, or a database from another installation".into(),
            )
            .into());
        }
        // Only against a configured public URL: without one it is the listen address, which differs
        // between a server on port 0 and every operator command, and the warning would be noise.
        if config.public_url.is_some() {
            warn_when_urls_differ(&ca, public_url);
        }
        return Ok(ca);
    }
    let mut ca = CertificateAuthority::create(keystore, &config.ca.organization, &config.ca.country, public_url, now)?;
    ca.qc_sscd = config.qc_sscd();
    let stored = db::write_transaction(conn, |c| {
        for (name, level) in [(CaName::Root, &ca.root), (CaName::Issuing, &ca.issuing)] {
            store::insert(
                c,
                &store::CaKeyRow {
                    name,
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
                event: AuditEventName::CaCreated,
                outcome: Outcome::Success,
                user_id: None,
                credential_id: None,
                detail: format!("root {} / issuing {}", ca.root.name, ca.issuing.name),
            },
        )
    });
    if let Err(e) = stored {
        // Keys that no database row names would only confuse the next start: remove them, but only
        // when the database is seen not to name them (a COMMIT can fail after it took effect; a
        // stored CA whose keys were destroyed could never sign again).
        match store::find(conn, CaName::Root) {
            Ok(None) => crate::pki::ca::discard_keys(keystore, &ca.key_ids()),
            // Another node stored its CA first: ours is named nowhere.
            Ok(Some(row)) if row.key_id != ca.root.key.to_hex() => {
                crate::pki::ca::discard_keys(keystore, &ca.key_ids())
            }
            Ok(Some(_)) => {}
            Err(check) => tracing::warn!(
                error = %check,
                "storing the new CA failed and the database cannot be read: its keys stay on the token"
            ),
        }
        return Err(e.into());
    }
    Ok(ca)
}

/// The start-up check of item "published URLs follow the configuration": an issuing CA certificate
/// made under another public URL sends validators to an address that may no longer answer.
fn warn_when_urls_differ(ca: &CertificateAuthority, public_url: &str) {
    match ca.issuing_urls_differ(public_url) {
        Ok(None) => {}
        Ok(Some((current, wanted))) => tracing::warn!(
            published_root_certificate = %current.issuer_cert_url,
            published_root_crl = %current.crl_url,
            expected_root_certificate = %wanted.issuer_cert_url,
            expected_root_crl = %wanted.crl_url,
            "the issuing CA certificate points to URLs that differ from the public URL {public_url}: validators \
             are sent to the old address. Run `rssp pki reissue-issuing-ca` (with this configuration) to issue a \
             new issuing CA certificate for the same key with the current URLs, then restart every node"
        ),
        Err(e) => tracing::warn!(error = %e, "could not read the URLs of the issuing CA certificate"),
    }
}

/// The outcome of `rssp pki reissue-issuing-ca`.
#[derive(Debug, Clone)]
pub struct ReissuedCa {
    /// The new current certificate (DER).
    pub certificate: Vec<u8>,
    /// The new certificate's serial number, hex.
    pub serial_hex: String,
    /// The serial of the certificate it replaced, which stays published under its serial.
    pub previous_serial_hex: String,
}

fn serial_hex(der: &[u8]) -> Result<String, PkiError> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der)?;
    Ok(hex::encode(cert.tbs_certificate().serial_number().as_bytes()))
}

/// Issues a new certificate of the issuing CA for the same key, with the URLs of the current public
/// URL, signed by the root, and makes it the current one. The replaced certificate is kept in the
/// history and stays published (`/pki/issuing-ca/<serial>.cer`). Nodes that are running keep serving
/// the certificate they loaded until they restart.
pub fn reissue_issuing_ca(services: &Services) -> Result<ReissuedCa, ServiceError> {
    let now = services.now();
    let previous = services.ca.issuing.certificate_der.clone();
    let previous_serial_hex = serial_hex(&previous)?;
    let level = services.ca.reissue_issuing(services.ca_keys(), &services.public_url)?;
    let serial_hex = serial_hex(&level.certificate_der)?;
    db::write_transaction(&mut *services.conn()?, |c| -> Result<(), ServiceError> {
        // The certificate replaced is the one in the database (another node may have reissued since
        // this process loaded the CA): keep that one in the history.
        let stored =
            store::find(c, CaName::Issuing)?.ok_or_else(|| ServiceError::invariant("the issuing CA is not stored"))?;
        if stored.certificate != previous {
            return Err(ServiceError::Conflict(
                "the issuing CA certificate changed since this process started; run the command again".into(),
            ));
        }
        store::insert_history(
            c,
            &store::HistoryRow {
                serial: previous_serial_hex.clone(),
                ca_name: CaName::Issuing,
                certificate: previous.clone(),
                superseded_at: now,
            },
        )?;
        if !store::replace_certificate(c, CaName::Issuing, &level.certificate_der)? {
            return Err(ServiceError::invariant("the issuing CA is not stored"));
        }
        audit::record(
            c,
            now,
            AuditEvent {
                event: AuditEventName::CaIssuingReissued,
                outcome: Outcome::Success,
                user_id: None,
                credential_id: None,
                detail: format!(
                    "issuing CA certificate {serial_hex} replaces {previous_serial_hex} (same key), published URLs under {}",
                    services.public_url
                ),
            },
        )?;
        Ok(())
    })?;
    Ok(ReissuedCa { certificate: level.certificate_der, serial_hex, previous_serial_hex })
}

/// A certificate of the issuing CA by its serial number (hex, any case): the current one or one it
/// replaced. None when there is no such certificate.
pub fn issuing_certificate_by_serial(services: &Services, serial: &str) -> Result<Option<Vec<u8>>, ServiceError> {
    let serial = serial.to_ascii_lowercase();
    if serial.is_empty() || serial.len() > 64 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    if serial_hex(&services.ca.issuing.certificate_der)? == serial {
        return Ok(Some(services.ca.issuing.certificate_der.clone()));
    }
    let mut conn = services.conn()?;
    // A node started before a reissue still knows the older certificate as current: the database has
    // the newer one.
    if let Some(current) = store::find(&mut conn, CaName::Issuing)? {
        if serial_hex(&current.certificate)? == serial {
            return Ok(Some(current.certificate));
        }
    }
    Ok(store::history_by_serial(&mut conn, CaName::Issuing, &serial)?.map(|row| row.certificate))
}

/// Which CA a CRL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlIssuer {
    /// The root CA.
    Root,
    /// The issuing CA.
    Issuing,
}

impl CrlIssuer {
    /// The name the CRL store and the CA key store use for this CA.
    pub fn ca_name(self) -> CaName {
        match self {
            CrlIssuer::Root => CaName::Root,
            CrlIssuer::Issuing => CaName::Issuing,
        }
    }

    fn level(self, ca: &CertificateAuthority) -> &CaLevel {
        match self {
            CrlIssuer::Root => &ca.root,
            CrlIssuer::Issuing => &ca.issuing,
        }
    }
}

/// A CRL as stored and served.
#[derive(Debug, Clone)]
pub struct PublishedCrl {
    /// The CRL number (RFC 5280 §5.2.3).
    pub number: i64,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

impl From<crls::CrlRow> for PublishedCrl {
    fn from(row: crls::CrlRow) -> Self {
        PublishedCrl {
            number: row.crl_number,
            this_update: row.this_update,
            next_update: row.next_update,
            der: row.der,
        }
    }
}

/// The stored CRL with the highest number, as published. Serving it signs nothing.
pub fn current_crl(services: &Services, issuer: CrlIssuer) -> Result<Vec<u8>, ServiceError> {
    crls::latest(&mut *services.conn()?, issuer.ca_name())?
        .map(|row| row.der)
        .ok_or_else(|| ServiceError::invariant(format!("no CRL of the {} CA is stored", issuer.ca_name())))
}

/// Makes, signs and stores a new CRL of `issuer`. The number is taken and the revoked certificates read
/// in one write transaction, so a higher number always lists at least what a lower one does; the HSM
/// signs after that transaction ended, with no connection held.
pub fn publish_crl(services: &Services, issuer: CrlIssuer) -> Result<PublishedCrl, ServiceError> {
    let now = services.now();
    let (number, revoked) = db::write_transaction(&mut *services.conn()?, |c| -> Result<_, ServiceError> {
        let number = crls::next_number(c, issuer.ca_name())?;
        // The root certifies only the issuing CA, which is never revoked here: its CRL stays empty.
        let revoked = match issuer {
            CrlIssuer::Root => Vec::new(),
            CrlIssuer::Issuing => credentials::revoked(c)?,
        };
        Ok((number, revoked))
    })?;
    let times = crl::CrlTimes { number, this_update: now, next_update: now + services.config.ca.crl_lifetime_secs };
    let der = crl::build(services.ca_keys(), issuer.level(&services.ca), &revoked, times)?;
    let row = crls::CrlRow {
        issuer: issuer.ca_name(),
        crl_number: number,
        this_update: times.this_update,
        next_update: times.next_update,
        entries: i64::try_from(revoked.len()).map_err(ServiceError::internal)?,
        der,
    };
    db::write_transaction(&mut *services.conn()?, |c| -> Result<(), ServiceError> {
        crls::insert(c, &row)?;
        audit::record(
            c,
            now,
            AuditEvent {
                event: AuditEventName::CrlPublished,
                outcome: Outcome::Success,
                user_id: None,
                credential_id: None,
                detail: format!("{} CA CRL number {number}, {} entries", issuer.ca_name(), row.entries),
            },
        )?;
        Ok(())
    })?;
    Ok(row.into())
}

/// Why a CRL is published now, or None when the stored one is still good.
fn refresh_reason(services: &Services, issuer: CrlIssuer, now: i64) -> Result<Option<&'static str>, ServiceError> {
    let mut conn = services.conn()?;
    let Some(latest) = crls::latest(&mut conn, issuer.ca_name())? else {
        return Ok(Some("none stored"));
    };
    if now >= latest.next_update - services.config.ca.crl_refresh_before_secs {
        return Ok(Some("nextUpdate is near"));
    }
    // A revocation whose CRL was not published (the node stopped after the revocation committed).
    if issuer == CrlIssuer::Issuing && credentials::revoked_count(&mut conn)? != latest.entries {
        return Ok(Some("revocations not yet listed"));
    }
    Ok(None)
}

/// The scheduled work of the CA: publishes the CRLs that have none stored, come near their nextUpdate
/// or miss a revocation. Returns how many were published. Any node may run it: at worst two nodes
/// publish one CRL each, with different numbers.
pub fn refresh_crls(services: &Services) -> Result<usize, ServiceError> {
    let mut published = 0;
    for issuer in [CrlIssuer::Root, CrlIssuer::Issuing] {
        if let Some(reason) = refresh_reason(services, issuer, services.now())? {
            let crl = publish_crl(services, issuer)?;
            tracing::info!(issuer = issuer.ca_name().as_str(), number = crl.number, reason, "CRL published");
            published += 1;
        }
    }
    Ok(published)
}

/// After a revocation committed: the issuing CA's CRL lists it at once. A failure here leaves the
/// revocation in force and the CRL stale until the scheduler's next run, which notices the missing entry.
pub fn publish_after_revocation(services: &Services) {
    super::ocsp::after_revocation(services);
    if let Err(e) = publish_crl(services, CrlIssuer::Issuing) {
        tracing::error!(
            error = %crate::telemetry::error_chain(&e),
            "publishing the CRL after a revocation; the scheduler will retry"
        );
    }
}
