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

/// Most responses a node keeps (each about a kilobyte: the responder's certificate is in it): past it
/// the cache starts again empty. Unknown serials are not cached, so only real certificates fill it.
const MAX_CACHED: usize = 20_000;

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
    /// Responses being signed now: past the limit an anonymous flood gets tryLater instead of the HSM
    /// time that signing needs.
    in_flight: std::sync::atomic::AtomicUsize,
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
    fn cached(&self, query: &OcspQuery, now: i64, poll: Duration) -> Option<OcspAnswer> {
        let key = cache_key(self, query)?;
        let generation = self.recent_generation(poll)?;
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(&key)?;
        (entry.generation == generation && now < entry.refresh_at)
            .then(|| OcspAnswer { der: Arc::clone(&entry.der), validity: Some((entry.this_update, entry.next_update)) })
    }

    /// Takes note of a generation read from the database by a query that started at `started`. Both
    /// counts only grow, so the larger of two readings is the later one: a slow reader that read before a
    /// revocation cannot put back the generation read after it.
    fn note_generation(&self, value: (i64, i64), started: Instant) {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let newer = (value.0.max(generation.value.0), value.1.max(generation.value.1));
        let read_at = generation.read_at.map_or(started, |at| at.max(started));
        *generation = Generation { value: newer, read_at: Some(read_at) };
    }

    fn current_generation(&self) -> (i64, i64) {
        self.generation.lock().unwrap_or_else(|e| e.into_inner()).value
    }

    /// This node's reading of the generation, when it is younger than `poll`.
    fn recent_generation(&self, poll: Duration) -> Option<(i64, i64)> {
        let generation = *self.generation.lock().unwrap_or_else(|e| e.into_inner());
        generation.read_at.filter(|at| at.elapsed() <= poll).map(|_| generation.value)
    }
}

/// The key of a cacheable query: the DER of its one CertID, when it has one and no nonce. The root
/// answers only about the issuing CA and ignores nonces (RFC 5019 §2.2.1): its key signs such a
/// response once per half validity, never on a stranger's demand.
fn cache_key(responder: &OcspResponder, query: &OcspQuery) -> Option<Vec<u8>> {
    match query.cert_ids.as_slice() {
        [cert_id] if query.nonce.is_none() || responder.root.named_by(cert_id) => cert_id.to_der().ok(),
        _ => None,
    }
}

/// The answer to a DER request from this node's cache, when it may be served without the database,
/// the HSM or a blocking thread (see the module's documentation). None: ask [`respond`].
pub fn cached_answer(services: &Services, request: &[u8]) -> Option<OcspAnswer> {
    let query = OcspQuery::from_der(request)?;
    let poll = Duration::from_millis(services.config.ocsp.status_poll_ms);
    services.ocsp.cached(&query, services.now(), poll)
}

/// The answer to a GET whose path is not a base64 request.
pub fn malformed() -> OcspAnswer {
    unsigned(OcspResponseStatus::MalformedRequest)
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
        in_flight: std::sync::atomic::AtomicUsize::new(0),
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
    let event = certified_event(&responder, "key generated");
    match super::trust_services::store_created(conn, keystore, &row, event)? {
        None => Ok(responder),
        Some(winner) => responder_of(winner),
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
    // Near the issuing CA's own end a new certificate would end no later than this one: renewing
    // would only churn. The issuing CA needs a new key then, which is an operator's ceremony.
    let due = stored.not_after - now < config.responder_renew_before_days * 86_400;
    if !due || stored.not_after >= services.ca.issuing.not_after {
        if due {
            tracing::warn!(
                "the OCSP responder certificate cannot be renewed past the issuing CA's notAfter; it expires {}",
                crate::clock::rfc3339(stored.not_after)
            );
        }
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
    } else {
        // Another node renewed first: the certificate the issuing CA signed for this node is recorded
        // as made and never used.
        db::write_transaction(&mut *services.conn()?, |c| {
            audit::record(c, now, certified_event(&renewed, "discarded unused: another node renewed first"))
        })?;
        if let Some(row) = trust_services::find_key(&mut *services.conn()?, TrustServiceName::Ocsp)? {
            services.ocsp.set_delegated(responder_of(row).map_err(ServiceError::internal)?);
        }
    }
    Ok(replaced)
}

/// After a revocation committed on this node: its next answers read the new status.
pub fn after_revocation(services: &Services) {
    let started = Instant::now();
    match services.conn().and_then(|mut c| Ok(credentials::status_generation(&mut c)?)) {
        Ok(value) => services.ocsp.note_generation(value, started),
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
    respond_to(services, &query)
}

/// A signed response about `certificate_der` (issued by `issuer_der`: a person's or the TSA's certificate
/// by the issuing CA, the issuing CA's by the root), made by the responder, for the validation data that
/// goes into a signature (B-LT) or a signDoc answer. `fresh`: signed now (with a nonce, so not from the
/// cache), so that it tells the status after a signature just made. A responder too busy to sign one now
/// is [`ServiceError::Unavailable`].
pub(crate) fn response_about(
    services: &Services,
    certificate_der: &[u8],
    issuer_der: &[u8],
    fresh: bool,
) -> Result<Vec<u8>, ServiceError> {
    let cert_id = ocsp::cert_id(&certificate(certificate_der)?, &certificate(issuer_der)?)?;
    let nonce = if fresh { Some(ocsp::nonce_extension(&crate::domain::secrets::random_bytes::<16>())?) } else { None };
    let answer = respond_to(services, &OcspQuery { cert_ids: vec![cert_id], nonce })?;
    if !ocsp::is_successful(&answer.der) {
        return Err(ServiceError::Unavailable);
    }
    Ok(answer.der.to_vec())
}

/// One response in the making, counted while it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize, limit: usize) -> Option<InFlight<'a>> {
        use std::sync::atomic::Ordering;
        if count.fetch_add(1, Ordering::SeqCst) >= limit {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(InFlight(count))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn respond_to(services: &Services, query: &OcspQuery) -> Result<OcspAnswer, ServiceError> {
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
    // The generation is read again only when this node's reading is older than the poll: the statuses
    // below are read fresh in any case, and the reading only tags what is cached (a stranger asking
    // about random serials costs an indexed read each, not a count over every certificate).
    let poll = Duration::from_millis(services.config.ocsp.status_poll_ms);
    let generation = match responder.recent_generation(poll) {
        Some(generation) => generation,
        None => {
            let started = Instant::now();
            let generation = credentials::status_generation(&mut conn)?;
            responder.note_generation(generation, started);
            responder.current_generation()
        }
    };
    let mut statuses = Vec::with_capacity(query.cert_ids.len());
    for cert_id in &query.cert_ids {
        let serial = hex::encode(cert_id.serial_number.as_bytes());
        statuses.push(match issuer {
            Issuer::Issuing => issued_status(services, &mut conn, &serial)?,
            Issuer::Root => issuing_ca_status(services, &mut conn, &serial)?,
        });
    }
    drop(conn);
    let key = cache_key(responder, query);
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
    // At most as many responses being signed as the HSM has sessions: the rest may retry. (A cached
    // response that only needed its status read again never waits here.)
    let Some(_turn) = InFlight::enter(&responder.in_flight, services.config.hsm.sessions.max(1)) else {
        return Ok(unsigned(OcspResponseStatus::TryLater));
    };
    let keystore = services.ca_keys();
    let delegated = responder.delegated();
    // A response is never relied on past the certificate that signed it.
    let next_update = match issuer {
        Issuer::Issuing => {
            if delegated.not_after <= now {
                return Err(ServiceError::invariant(
                    "the OCSP responder certificate has expired and could not be renewed: no response is signed",
                ));
            }
            (now + services.config.ocsp.response_validity_secs).min(delegated.not_after)
        }
        Issuer::Root => (now + services.config.ocsp.response_validity_secs).min(services.ca.root.not_after),
    };
    let answers: Vec<Answer> = query
        .cert_ids
        .iter()
        .zip(&statuses)
        .map(|(cert_id, status)| Answer { cert_id: cert_id.clone(), status: *status, this_update: now, next_update })
        .collect();
    let der = match issuer {
        Issuer::Issuing => ocsp::signed_response(&delegated.signer(keystore)?, now, &answers, query.nonce.as_ref())?,
        // The root ignores nonces (see `cache_key`).
        Issuer::Root => ocsp::signed_response(&ocsp::root_signer(&services.ca, keystore)?, now, &answers, None)?,
    };
    let der = Arc::new(der);
    crate::metrics::METRICS.ocsp_responses_signed.inc();
    let Some(key) = key else { return Ok(OcspAnswer { der, validity: None }) };
    let validity = Some((now, next_update));
    // Unknown serials are not kept (a stranger could fill the cache with them); nor a response whose
    // generation was overtaken while it was made (a revocation in between).
    if statuses[0] == Status::Unknown || responder.current_generation() != generation {
        return Ok(OcspAnswer { der, validity });
    }
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
            next_update,
            refresh_at: now + (next_update - now) / 2,
        },
    );
    Ok(OcspAnswer { der, validity })
}

fn unsigned(status: OcspResponseStatus) -> OcspAnswer {
    OcspAnswer { der: Arc::new(ocsp::status_response(status)), validity: None }
}

/// The status of a certificate of the issuing CA: a credential's by its serial, good for the TSA's and
/// the responder's own certificates, unknown for anything else.
fn issued_status(services: &Services, conn: &mut DbConnection, serial: &str) -> Result<Status, ServiceError> {
    Ok(match credentials::revocation_by_serial(conn, serial)? {
        Some((None, _)) => Status::Good,
        // An unspecified reason is left out, as RFC 5280 §5.3.1 wants.
        Some((Some(at), code)) => Status::Revoked { at, reason: code.map(crate::pki::crl::crl_reason) },
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

/// The body of an answer that failed for want of the database or HSM: tryLater when that is
/// temporary (503), internalError otherwise (RFC 6960 §2.3).
pub fn failure_response(temporary: bool) -> Vec<u8> {
    ocsp::status_response(if temporary { OcspResponseStatus::TryLater } else { OcspResponseStatus::InternalError })
}
