//! The OCSP responder: answers for the issuing CA's certificates (signed by the delegated responder)
//! and for the issuing CA itself (signed by the root), `unauthorized` for any other issuer.
//!
//! A response without a nonce, about one certificate, is signed once and kept in this node's cache
//! until half its validity has passed or the certificate's status may have changed. Whether a status
//! may have changed is told by the "status generation", how many certificates were issued and how many
//! revoked: both only grow. A node reads it again before it serves from the cache when its last
//! reading is older than `ocsp.status_poll_ms`, and at once after a revocation it made itself, so a
//! revocation shows in every node's next answers within that time. A request with a nonce is signed
//! afresh: the nonce is in what is signed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use der::Encode;

use crate::audit::{self, AuditEvent, Outcome};
use crate::db::{self, ca as ca_store, credentials, trust_services, DbConnection};
use crate::domain::{AuditEventName, CaName, KeyKind, TrustServiceName};
use crate::hsm::{KeyId, KeyStore};
use crate::pki::ocsp::asn1::OcspResponseStatus;
use crate::pki::ocsp::{self, Answer, DelegatedResponder, IssuerIdentity, OcspQuery, Status};
use crate::pki::{CertificateAuthority, PkiError};

use super::{ServiceError, Services, StartError};

/// Most responses a node keeps: past it the cache starts again empty (a client asking about many
/// unknown serials cannot make it grow without end).
const MAX_CACHED: usize = 100_000;

/// A response as served.
#[derive(Debug, Clone)]
pub struct OcspAnswer {
    /// The DER OCSPResponse.
    pub der: Arc<Vec<u8>>,
    /// thisUpdate and nextUpdate of a cacheable (nonce-free) successful response, for HTTP caching.
    pub validity: Option<(i64, i64)>,
}

/// A signed response kept for the CertID it answers.
#[derive(Debug, Clone)]
struct Cached {
    der: Arc<Vec<u8>>,
    status: Status,
    generation: (i64, i64),
    this_update: i64,
    next_update: i64,
    /// From then on the response is signed again.
    refresh_at: i64,
}

/// The last status generation this node read, and when.
#[derive(Debug, Clone, Copy)]
struct Generation {
    value: (i64, i64),
    read_at: Option<Instant>,
}

/// The responder's state on this node.
#[derive(Debug)]
pub struct OcspResponder {
    delegated: RwLock<Arc<DelegatedResponder>>,
    issuing: IssuerIdentity,
    root: IssuerIdentity,
    /// Serial numbers (hex) of certificates of the issuing CA that no credential holds: the TSA's.
    tsa_serial: String,
    /// Serial number (hex) of the issuing CA certificate this node loaded.
    issuing_serial: String,
    cache: Mutex<HashMap<Vec<u8>, Cached>>,
    generation: Mutex<Generation>,
}

impl OcspResponder {
    /// The delegated responder's current certificate.
    pub fn delegated(&self) -> Arc<DelegatedResponder> {
        Arc::clone(&self.delegated.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn set_delegated(&self, responder: DelegatedResponder) {
        *self.delegated.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(responder);
        // Cached responses carry the old certificate.
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The cached answer to `query`, when it may be served without reading the database: one
    /// certificate, no nonce, the generation read recently and unchanged since the response was made.
    pub fn cached(&self, query: &OcspQuery, now: i64, poll: Duration) -> Option<OcspAnswer> {
        let key = cache_key(query)?;
        let generation = *self.generation.lock().unwrap_or_else(|e| e.into_inner());
        if generation.read_at.is_none_or(|at| at.elapsed() > poll) {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(&key)?;
        (entry.generation == generation.value && now < entry.refresh_at)
            .then(|| OcspAnswer { der: Arc::clone(&entry.der), validity: Some((entry.this_update, entry.next_update)) })
    }

    fn note_generation(&self, value: (i64, i64)) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) =
            Generation { value, read_at: Some(Instant::now()) };
    }
}

/// The key of a cacheable query: the DER of its one CertID, when it has one and no nonce.
fn cache_key(query: &OcspQuery) -> Option<Vec<u8>> {
    match (query.cert_ids.as_slice(), &query.nonce) {
        ([cert_id], None) => cert_id.to_der().ok(),
        _ => None,
    }
}

/// Loads the delegated responder, or on first start generates its key (on the CA's token) and has
/// the issuing CA certify it; renews its certificate when it is due.
pub(crate) fn load_or_create(
    conn: &mut DbConnection,
    keystore: &KeyStore,
    ca: &CertificateAuthority,
    tsa_certificate: &[u8],
    config: &crate::config::Config,
    public_url: &str,
    now: i64,
) -> Result<OcspResponder, StartError> {
    let delegated = match trust_services::find_key(conn, TrustServiceName::Ocsp)? {
        Some(row) => {
            let responder = responder_of(row)?;
            if !keystore.has_key(&responder.key).map_err(PkiError::from)? {
                return Err(PkiError::Invalid(
                    "the OCSP responder key is not on the CA's HSM token: wrong token label, or a database from another installation".into(),
                )
                .into());
            }
            responder
        }
        None => create(conn, keystore, ca, config, public_url, now)?,
    };
    let responder = OcspResponder {
        delegated: RwLock::new(Arc::new(delegated)),
        issuing: IssuerIdentity::of(&certificate(&ca.issuing.certificate_der)?)?,
        root: IssuerIdentity::of(&certificate(&ca.root.certificate_der)?)?,
        tsa_serial: serial_of(&certificate(tsa_certificate)?),
        issuing_serial: serial_of(&certificate(&ca.issuing.certificate_der)?),
        cache: Mutex::new(HashMap::new()),
        generation: Mutex::new(Generation { value: (0, 0), read_at: None }),
    };
    Ok(responder)
}

fn certificate(der: &[u8]) -> Result<x509_cert::Certificate, PkiError> {
    use der::Decode;
    Ok(x509_cert::Certificate::from_der(der)?)
}

fn create(
    conn: &mut DbConnection,
    keystore: &KeyStore,
    ca: &CertificateAuthority,
    config: &crate::config::Config,
    public_url: &str,
    now: i64,
) -> Result<DelegatedResponder, StartError> {
    let responder = DelegatedResponder::create(
        keystore,
        ca,
        &config.ca.organization,
        &config.ca.country,
        public_url,
        now,
        config.ocsp.responder_validity_days,
    )?;
    let row = trust_services::TrustServiceKeyRow {
        name: TrustServiceName::Ocsp,
        key_kind: responder.kind.to_string(),
        key_id: responder.key.to_hex(),
        certificate: responder.certificate_der.clone(),
        created_at: now,
    };
    let stored = db::write_transaction(conn, |c| -> Result<(), diesel::result::Error> {
        trust_services::insert_key(c, &row)?;
        audit::record(c, now, certified_event(&responder, "key generated"))
    });
    let Err(e) = stored else { return Ok(responder) };
    // Another node stored its responder first: use that one (see `timestamps::load_or_create`).
    match trust_services::find_key(conn, TrustServiceName::Ocsp) {
        Ok(Some(winner)) if winner.key_id != responder.key.to_hex() => {
            crate::pki::ca::discard_keys(keystore, std::slice::from_ref(&responder.key));
            responder_of(winner)
        }
        Ok(Some(_)) => Ok(responder),
        Ok(None) => {
            crate::pki::ca::discard_keys(keystore, std::slice::from_ref(&responder.key));
            Err(e.into())
        }
        Err(_) => Err(e.into()),
    }
}

fn certified_event<'a>(responder: &DelegatedResponder, how: &str) -> AuditEvent<'a> {
    AuditEvent {
        event: AuditEventName::OcspResponderCertified,
        outcome: Outcome::Success,
        user_id: None,
        credential_id: None,
        detail: format!(
            "delegated OCSP responder certificate {} ({how}), valid until {}",
            responder.serial_hex(),
            responder.not_after
        ),
    }
}

fn responder_of(row: trust_services::TrustServiceKeyRow) -> Result<DelegatedResponder, StartError> {
    let key = KeyId::from_hex(&row.key_id).ok_or_else(|| PkiError::Invalid("stored OCSP responder key id".into()))?;
    let kind: KeyKind =
        row.key_kind.parse().map_err(|e| StartError::failed("stored key kind of the OCSP responder", e))?;
    Ok(DelegatedResponder::from_parts(key, kind, row.certificate)?)
}

/// Renews the delegated responder's certificate when fewer than `ocsp.responder_renew_before_days`
/// are left, and takes up a certificate another node renewed. Returns whether this call renewed it.
/// Any node may run it: the stored certificate is replaced only if it is still the one this node read.
pub fn renew_responder_if_due(services: &Services) -> Result<bool, ServiceError> {
    let now = services.now();
    let config = &services.config.ocsp;
    let mut conn = services.conn()?;
    let row = trust_services::find_key(&mut conn, TrustServiceName::Ocsp)?
        .ok_or_else(|| ServiceError::invariant("the OCSP responder is not stored"))?;
    let stored = responder_of(row).map_err(ServiceError::internal)?;
    if stored.not_after - now >= config.responder_renew_before_days * 86_400 {
        if stored.certificate_der != services.ocsp.delegated().certificate_der {
            services.ocsp.set_delegated(stored);
        }
        return Ok(false);
    }
    drop(conn);
    let renewed =
        stored.renewed(services.ca_keys(), &services.ca, &services.public_url, now, config.responder_validity_days)?;
    let replaced = db::write_transaction(&mut *services.conn()?, |c| -> Result<bool, ServiceError> {
        if !trust_services::replace_certificate(
            c,
            TrustServiceName::Ocsp,
            &stored.certificate_der,
            &renewed.certificate_der,
        )? {
            return Ok(false);
        }
        audit::record(c, now, certified_event(&renewed, "renewed"))?;
        Ok(true)
    })?;
    if replaced {
        services.ocsp.set_delegated(renewed);
    } else if let Some(row) = trust_services::find_key(&mut *services.conn()?, TrustServiceName::Ocsp)? {
        services.ocsp.set_delegated(responder_of(row).map_err(ServiceError::internal)?);
    }
    Ok(replaced)
}

/// After a revocation committed on this node: its next answers read the new status.
pub fn after_revocation(services: &Services) {
    match services.conn().and_then(|mut c| Ok(credentials::status_generation(&mut c)?)) {
        Ok(value) => services.ocsp.note_generation(value),
        Err(e) => {
            // The cache is no longer trusted until the generation is read again.
            *services.ocsp.generation.lock().unwrap_or_else(|e| e.into_inner()) =
                Generation { value: (-1, -1), read_at: None };
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "reading the status generation after a revocation");
        }
    }
}

/// Which CA a request asks about.
enum Issuer {
    /// The issuing CA: end entities, the TSA and responder certificates.
    Issuing,
    /// The root: the issuing CA's own certificates.
    Root,
}

/// Answers a DER OCSPRequest. A request that is malformed or asks about another issuer is answered
/// with that status, never an error; a database or HSM failure is an error (the caller answers
/// tryLater or internalError).
pub fn respond(services: &Services, request: &[u8]) -> Result<OcspAnswer, ServiceError> {
    let Some(query) = OcspQuery::from_der(request) else {
        return Ok(unsigned(OcspResponseStatus::MalformedRequest));
    };
    let responder = &services.ocsp;
    let issuer = if query.cert_ids.iter().all(|id| responder.issuing.named_by(id)) {
        Issuer::Issuing
    } else if query.cert_ids.iter().all(|id| responder.root.named_by(id)) {
        Issuer::Root
    } else {
        return Ok(unsigned(OcspResponseStatus::Unauthorized));
    };
    let now = services.now();
    let mut conn = services.conn()?;
    let generation = credentials::status_generation(&mut conn)?;
    responder.note_generation(generation);
    let mut statuses = Vec::with_capacity(query.cert_ids.len());
    for cert_id in &query.cert_ids {
        let serial = hex::encode(cert_id.serial_number.as_bytes());
        statuses.push(match issuer {
            Issuer::Issuing => issued_status(services, &mut conn, &serial)?,
            Issuer::Root => issuing_ca_status(services, &mut conn, &serial)?,
        });
    }
    drop(conn);
    let key = cache_key(&query);
    if let (Some(key), [status]) = (&key, statuses.as_slice()) {
        let mut cache = responder.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = cache.get_mut(key) {
            // Same status, still fresh: the signed response stands for the new generation too.
            if entry.status == *status && now < entry.refresh_at {
                entry.generation = generation;
                return Ok(OcspAnswer {
                    der: Arc::clone(&entry.der),
                    validity: Some((entry.this_update, entry.next_update)),
                });
            }
        }
    }
    let validity = services.config.ocsp.response_validity_secs;
    let answers: Vec<Answer> = query
        .cert_ids
        .iter()
        .zip(&statuses)
        .map(|(cert_id, status)| Answer {
            cert_id: cert_id.clone(),
            status: *status,
            this_update: now,
            next_update: now + validity,
        })
        .collect();
    let keystore = services.ca_keys();
    let der = match issuer {
        Issuer::Issuing => {
            let delegated = responder.delegated();
            ocsp::signed_response(&delegated.signer(keystore)?, now, &answers, query.nonce.as_ref())?
        }
        Issuer::Root => {
            ocsp::signed_response(&ocsp::root_signer(&services.ca, keystore)?, now, &answers, query.nonce.as_ref())?
        }
    };
    let der = Arc::new(der);
    crate::metrics::METRICS.ocsp_responses_signed.inc();
    let Some(key) = key else { return Ok(OcspAnswer { der, validity: None }) };
    let mut cache = responder.cache.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(
        key,
        Cached {
            der: Arc::clone(&der),
            status: statuses[0],
            generation,
            this_update: now,
            next_update: now + validity,
            refresh_at: now + validity / 2,
        },
    );
    Ok(OcspAnswer { der, validity: Some((now, now + validity)) })
}

fn unsigned(status: OcspResponseStatus) -> OcspAnswer {
    OcspAnswer { der: Arc::new(ocsp::status_response(status)), validity: None }
}

/// The status of a certificate of the issuing CA: a credential's by its serial, good for the TSA's and
/// the responder's own certificates, unknown for anything else.
fn issued_status(services: &Services, conn: &mut DbConnection, serial: &str) -> Result<Status, ServiceError> {
    Ok(match credentials::revocation_by_serial(conn, serial)? {
        Some(None) => Status::Good,
        // rssp records reasons in words only: the reason code is left out, as RFC 5280 wants for unspecified.
        Some(Some(at)) => Status::Revoked { at, reason: None },
        None if services.ocsp.tsa_serial == serial => Status::Good,
        None if services.ocsp.delegated().serial_hex() == serial => Status::Good,
        None => Status::Unknown,
    })
}

/// The status of a certificate of the root: good for the issuing CA's certificates (the current one
/// and those it replaced, never revoked), unknown for anything else.
fn issuing_ca_status(services: &Services, conn: &mut DbConnection, serial: &str) -> Result<Status, ServiceError> {
    if services.ocsp.issuing_serial == serial {
        return Ok(Status::Good);
    }
    // A node started before a reissue knows the older certificate as current.
    if let Some(current) = ca_store::find(conn, CaName::Issuing)? {
        if serial_of(&certificate(&current.certificate)?) == serial {
            return Ok(Status::Good);
        }
    }
    Ok(if ca_store::history_by_serial(conn, CaName::Issuing, serial)?.is_some() {
        Status::Good
    } else {
        Status::Unknown
    })
}

fn serial_of(certificate: &x509_cert::Certificate) -> String {
    hex::encode(certificate.tbs_certificate().serial_number().as_bytes())
}

/// The body of an answer that failed for want of the database or HSM: tryLater when busy,
/// internalError otherwise (RFC 6960 §2.3).
pub fn failure_response(error: &ServiceError) -> Vec<u8> {
    let status = match error {
        ServiceError::Unavailable | ServiceError::HsmUnavailable => OcspResponseStatus::TryLater,
        _ => OcspResponseStatus::InternalError,
    };
    ocsp::status_response(status)
}
