//! The time-stamping authority: its unit (created on first start), RFC 3161 requests from relying
//! parties (`POST /tsa`), and CSC `signatures/timestamp`, where each time-stamp spends a transaction
//! of one of the person's credentials. Every token issued is recorded in the audit chain and the
//! time-stamp log (`timestamps`) before it leaves.

use der::asn1::{Int, Uint};

use crate::audit::{self, AuditEvent, Outcome};
use crate::config::Config;
use crate::db::{self, timestamps as store, trust_services, DbConnection};
use crate::domain::{AuditEventName, HashAlgorithm, KeyKind, TimeStampRequester, TrustServiceName};
use crate::hsm::{KeyId, KeyStore};
use crate::pki::tsa::{self, Rejection, TimeStampQuery, TimeStampingUnit, TsaPolicy};
use crate::pki::tsp::FailureInfo;
use crate::pki::{CertificateAuthority, PkiError};

use super::{Param, Principal, ServiceError, Services, StartError};

/// The TSA as the service runs it: the unit and what every token states.
#[derive(Debug, Clone)]
pub struct TimeStampingAuthority {
    /// The key and certificate that sign.
    pub unit: TimeStampingUnit,
    /// What every token states.
    pub policy: TsaPolicy,
}

/// Loads the TSA unit, or on first start generates its key (on the CA's token) and has the issuing
/// CA certify it. Two nodes starting at once: the one that stores its unit first wins, the other
/// destroys its key and loads the winner's.
pub(crate) fn load_or_create(
    conn: &mut DbConnection,
    keystore: &KeyStore,
    ca: &CertificateAuthority,
    config: &Config,
    public_url: &str,
    now: i64,
) -> Result<TimeStampingAuthority, StartError> {
    let policy = TsaPolicy {
        policy: config.tsa.policy()?,
        accuracy_millis: config.tsa.accuracy_millis,
        qualified: config.tsa.qualified,
    };
    if let Some(row) = trust_services::find_key(conn, TrustServiceName::Tsa)? {
        let unit = unit_of(row)?;
        if !keystore.has_key(&unit.key).map_err(PkiError::from)? {
            return Err(PkiError::Invalid(
                "the TSA key is not on the CA's HSM token: wrong token label, or a database from another installation"
                    .into(),
            )
            .into());
        }
        return Ok(TimeStampingAuthority { unit, policy });
    }
    let kind = config.tsa.key_kind()?;
    let unit =
        TimeStampingUnit::create(keystore, ca, kind, &config.ca.organization, &config.ca.country, public_url, now)?;
    let row = trust_services::TrustServiceKeyRow {
        name: TrustServiceName::Tsa,
        key_kind: kind.to_string(),
        key_id: unit.key.to_hex(),
        certificate: unit.certificate_der.clone(),
        created_at: now,
    };
    let event = AuditEvent {
        event: AuditEventName::TsaCreated,
        outcome: Outcome::Success,
        user_id: None,
        credential_id: None,
        detail: format!("time-stamping unit, {kind} key, certified by the issuing CA"),
    };
    match super::trust_services::store_created(conn, keystore, &row, event)? {
        None => Ok(TimeStampingAuthority { unit, policy }),
        Some(winner) => Ok(TimeStampingAuthority { unit: unit_of(winner)?, policy }),
    }
}

fn unit_of(row: trust_services::TrustServiceKeyRow) -> Result<TimeStampingUnit, StartError> {
    let key = KeyId::from_hex(&row.key_id).ok_or_else(|| PkiError::Invalid("stored TSA key id".into()))?;
    let kind: KeyKind = row.key_kind.parse().map_err(|e| StartError::failed("stored key kind of the TSA", e))?;
    Ok(TimeStampingUnit::from_parts(key, kind, row.certificate)?)
}

/// Who sent a request to `POST /tsa`.
#[derive(Debug, Clone)]
pub enum RelyingParty {
    /// Nobody said who (`tsa.access = open`).
    Anonymous,
    /// A TSA client, by the name its API key was created with (`rssp tsa-client create`).
    Client(String),
}

/// The answer to an RFC 3161 request: a TimeStampResp, DER, granted or rejected.
#[derive(Debug)]
pub enum TsaAnswer {
    /// status granted, with the token.
    Granted(Vec<u8>),
    /// status rejection, with the reason.
    Rejected(Vec<u8>),
}

/// Answers a DER TimeStampReq from a relying party. A request the TSA cannot serve is a rejection
/// (RFC 3161 §2.4.2), never an error; a database or HSM failure is an error (the caller answers 503
/// or 500). The token is recorded in the audit chain and the log before it leaves.
pub fn respond(services: &Services, request: &[u8], requester: RelyingParty) -> Result<TsaAnswer, ServiceError> {
    let query = match TimeStampQuery::from_der(request, &services.tsa.policy.policy) {
        Ok(query) => query,
        Err(rejection) => {
            crate::metrics::METRICS.timestamps_rejected.with_label_values(&[rejection.failure.name()]).inc();
            return Ok(TsaAnswer::Rejected(tsa::rejected(&rejection)?));
        }
    };
    let (kind, id) = match &requester {
        RelyingParty::Anonymous => (TimeStampRequester::Anonymous, None),
        RelyingParty::Client(name) => (TimeStampRequester::Client, Some(name.as_str())),
    };
    let stamp = Stamp::new(services, &query)?;
    let token = stamp.sign(services, &query, &[])?;
    db::write_transaction(&mut *services.conn()?, |c| -> Result<(), ServiceError> {
        let seq = audit::record_numbered(
            c,
            stamp.gen_time,
            AuditEvent {
                event: AuditEventName::TsaTimestamp,
                outcome: Outcome::Success,
                user_id: None,
                credential_id: None,
                detail: stamp.describe(kind, id),
            },
        )?;
        store::log(c, &stamp.log_row(services, seq, kind, id, None))?;
        Ok(())
    })?;
    count_issued("tsa");
    Ok(TsaAnswer::Granted(tsa::granted(&token)?))
}

/// What a CSC client sends to `signatures/timestamp`, once parsed.
#[derive(Debug, Clone)]
pub struct CscTimestampRequest {
    /// The hash to time-stamp.
    pub hash: Vec<u8>,
    /// Its algorithm, dotted OID.
    pub hash_algo: String,
    /// The nonce as hex, if any.
    pub nonce: Option<String>,
}

/// CSC `signatures/timestamp`: a token for the person's hash, which spends one transaction of the
/// person's credential whose certificate expires first among those that can sign now and have a
/// transaction left (the package running out soonest is used first). As for a signature, the
/// transaction is spent (with the audit record and the log entry) before the HSM signs, and given back
/// if it fails: a token leaves only when its transaction was spent, and a transaction stays spent only
/// for a token that left.
pub fn csc_timestamp(
    services: &Services,
    principal: &Principal,
    request: CscTimestampRequest,
) -> Result<Vec<u8>, ServiceError> {
    let result = csc_timestamp_inner(services, principal, &request);
    if let Err(e) = &result {
        services.audit_refusal(AuditEventName::SignaturesTimestamp, Some(&principal.user_id), None, e);
    }
    result
}

fn csc_timestamp_inner(
    services: &Services,
    principal: &Principal,
    request: &CscTimestampRequest,
) -> Result<Vec<u8>, ServiceError> {
    let hash = HashAlgorithm::from_oid(&request.hash_algo).ok_or(ServiceError::Invalid(Param::HashAlgo))?;
    if request.hash.is_empty() {
        return Err(ServiceError::InvalidRequest("Empty hash parameter".into()));
    }
    if request.hash.len() != hash.digest_len() {
        return Err(ServiceError::DigestLength);
    }
    let nonce: Option<Int> = match &request.nonce {
        Some(text) => Some(tsa::nonce_from_hex(text).ok_or(ServiceError::Invalid(Param::Nonce))?),
        None => None,
    };
    let query = TimeStampQuery::for_digest(hash, &request.hash, nonce)
        .map_err(|rejection| ServiceError::InvalidRequest(rejection.text))?;
    let stamp = Stamp::new(services, &query)?;
    let user = Some(principal.user_id.as_str());
    let (seq, credential) = db::write_transaction(&mut *services.conn()?, |c| -> Result<_, ServiceError> {
        // The spend is conditional on the credential still being usable with a transaction left; one
        // chosen a moment ago may have lost its last transaction to a concurrent request: choose again.
        let mut charged = None;
        for _ in 0..3 {
            let Some(credential) = store::credential_to_charge(c, &principal.user_id, stamp.gen_time)? else { break };
            if db::credentials::spend_quota_if_usable(c, &credential, 1, stamp.gen_time)? {
                charged = Some(credential);
                break;
            }
        }
        let credential = charged.ok_or(ServiceError::NoTransactionLeft)?;
        let seq = audit::record_numbered(
            c,
            stamp.gen_time,
            AuditEvent {
                event: AuditEventName::SignaturesTimestamp,
                outcome: Outcome::Success,
                user_id: user,
                credential_id: Some(&credential),
                detail: format!("{}; one transaction spent", stamp.describe(TimeStampRequester::Person, user)),
            },
        )?;
        store::log(c, &stamp.log_row(services, seq, TimeStampRequester::Person, user, Some(&credential)))?;
        Ok((seq, credential))
    })?;
    match stamp.sign(services, &query, &[]) {
        Ok(token) => {
            count_issued("csc");
            Ok(token)
        }
        Err(e) => {
            let refund = services.conn().and_then(|mut conn| {
                db::write_transaction(&mut conn, |c| -> Result<(), ServiceError> {
                    db::credentials::refund_quota(c, &credential, 1)?;
                    store::unlog(c, seq)?;
                    audit::record(
                        c,
                        services.now(),
                        AuditEvent {
                            event: AuditEventName::SignaturesTimestamp,
                            outcome: Outcome::Refused,
                            user_id: user,
                            credential_id: Some(&credential),
                            detail: format!(
                                "time-stamp {} not made (HSM failure); its transaction refunded",
                                stamp.serial_hex
                            ),
                        },
                    )?;
                    Ok(())
                })
            });
            if let Err(refund_error) = refund {
                tracing::error!(error = %crate::telemetry::error_chain(&refund_error), "could not refund a time-stamp");
            }
            Err(e)
        }
    }
}

/// A time-stamp made for signDoc: over a signature value (B-T), or a PDF's document time-stamp (B-LTA).
/// Its transaction was spent with the signature's; it leaves only once [`record_signature_time_stamps`]
/// has written it to the audit chain and the log.
pub(crate) struct SignatureTimeStamp {
    /// The TimeStampToken, DER.
    pub(crate) token: Vec<u8>,
    stamp: Stamp,
    what: &'static str,
}

/// Makes a token over the digest (with `hash`) of a signature value, for a signDoc at B-T.
pub(crate) fn signature_time_stamp(
    services: &Services,
    hash: HashAlgorithm,
    signature_value: &[u8],
) -> Result<SignatureTimeStamp, ServiceError> {
    signdoc_time_stamp(services, hash, &hash.digest(signature_value), "a signature time-stamp")
}

/// Makes a PDF's document time-stamp (B-LTA): a token over its /ByteRange digest.
pub(crate) fn document_time_stamp(
    services: &Services,
    hash: HashAlgorithm,
    byte_range_digest: &[u8],
) -> Result<SignatureTimeStamp, ServiceError> {
    signdoc_time_stamp(services, hash, byte_range_digest, "a document time-stamp")
}

/// A token over `digest` carrying the TSA's certificate and the issuing CA's, so that the signature alone
/// holds the TSA's path to the root.
fn signdoc_time_stamp(
    services: &Services,
    hash: HashAlgorithm,
    digest: &[u8],
    what: &'static str,
) -> Result<SignatureTimeStamp, ServiceError> {
    let query = TimeStampQuery::for_digest(hash, digest, None)
        .map_err(|rejection| ServiceError::invariant(format!("signDoc time-stamp: {}", rejection.text)))?;
    let stamp = Stamp::new(services, &query)?;
    let token = stamp.sign(services, &query, std::slice::from_ref(&services.ca.issuing.certificate_der))?;
    Ok(SignatureTimeStamp { token, stamp, what })
}

/// Records signDoc's time-stamps (audit chain and log, in one transaction) before they leave.
pub(crate) fn record_signature_time_stamps(
    services: &Services,
    principal: &Principal,
    credential_id: &str,
    stamps: &[&SignatureTimeStamp],
) -> Result<(), ServiceError> {
    if stamps.is_empty() {
        return Ok(());
    }
    let user = Some(principal.user_id.as_str());
    db::write_transaction(&mut *services.conn()?, |c| -> Result<(), ServiceError> {
        for SignatureTimeStamp { stamp, what, .. } in stamps {
            let seq = audit::record_numbered(
                c,
                stamp.gen_time,
                AuditEvent {
                    event: AuditEventName::SignaturesTimestamp,
                    outcome: Outcome::Success,
                    user_id: user,
                    credential_id: Some(credential_id),
                    detail: format!(
                        "{}; {what} of signDoc, its transaction spent with the signature",
                        stamp.describe(TimeStampRequester::Person, user)
                    ),
                },
            )?;
            store::log(c, &stamp.log_row(services, seq, TimeStampRequester::Person, user, Some(credential_id)))?;
        }
        Ok(())
    })?;
    for _ in stamps {
        count_issued("csc_signdoc");
    }
    Ok(())
}

/// A token about to be made: its serial and genTime, chosen before anything is written.
struct Stamp {
    serial: Uint,
    serial_hex: String,
    imprint: String,
    hash: HashAlgorithm,
    /// genTime, Unix seconds: the service clock rounded to the nearest second, so it is off by at most
    /// half a second (plus the clock's own error) and the stated accuracy of 1 s holds.
    gen_time: i64,
}

impl Stamp {
    fn new(services: &Services, query: &TimeStampQuery) -> Result<Stamp, ServiceError> {
        let gen_time = (services.clock.now_millis() + 500).div_euclid(1000);
        if !services.tsa.unit.valid_at(gen_time) {
            return Err(ServiceError::invariant(
                "the TSA certificate is not valid now: no time-stamp is made (a new TSA unit is needed)",
            ));
        }
        let serial = tsa::random_serial_number()?;
        Ok(Stamp {
            serial_hex: hex::encode(serial.as_bytes()),
            serial,
            imprint: hex::encode(query.imprint.hashed_message.as_bytes()),
            hash: query.hash,
            gen_time,
        })
    }

    /// Signs the token in the HSM; it carries `ca_chain` after the TSA's certificate (when asked for).
    fn sign(&self, services: &Services, query: &TimeStampQuery, ca_chain: &[Vec<u8>]) -> Result<Vec<u8>, ServiceError> {
        let tsa = &services.tsa;
        let serial = self.serial.clone();
        Ok(tsa::time_stamp(services.ca_keys(), &tsa.unit, &tsa.policy, query, serial, self.gen_time, ca_chain)?)
    }

    /// The audit record's words: serial, imprint and who asked (never a secret).
    fn describe(&self, requester: TimeStampRequester, id: Option<&str>) -> String {
        format!(
            "time-stamp {} of {} imprint {} for {requester}{}",
            self.serial_hex,
            self.hash.oid(),
            self.imprint,
            id.map(|id| format!(" {id}")).unwrap_or_default()
        )
    }

    fn log_row<'a>(
        &'a self,
        services: &'a Services,
        seq: i64,
        requester: TimeStampRequester,
        requester_id: Option<&'a str>,
        credential_id: Option<&'a str>,
    ) -> store::NewTimeStamp<'a> {
        store::NewTimeStamp {
            seq,
            serial: &self.serial_hex,
            gen_time: self.gen_time,
            policy: &services.config.tsa.policy_oid,
            hash_algorithm: self.hash.oid(),
            imprint: &self.imprint,
            requester,
            requester_id,
            credential_id,
        }
    }
}

fn count_issued(through: &str) {
    crate::metrics::METRICS.timestamps_issued.with_label_values(&[through]).inc();
}

/// Why an RFC 3161 request failed for want of the system (database or HSM), as a TimeStampResp with
/// systemFailure: RFC 3161 clients read the reply body, whatever the HTTP status.
pub fn system_failure() -> Vec<u8> {
    let rejection = Rejection { failure: FailureInfo::SystemFailure, text: "the TSA cannot answer now; retry".into() };
    tsa::rejected(&rejection).unwrap_or_default()
}

/// A time-stamp the TSA issued, as the log keeps it.
#[derive(Debug, Clone)]
pub struct LoggedTimeStamp {
    /// Position in the log.
    pub seq: i64,
    /// TSTInfo serialNumber, lowercase hex.
    pub serial: String,
    /// genTime, Unix seconds.
    pub gen_time: i64,
    /// The policy OID.
    pub policy: String,
    /// The imprint's hash algorithm OID.
    pub hash_algorithm: String,
    /// The hashed message, lowercase hex.
    pub imprint: String,
    /// Who asked.
    pub requester: TimeStampRequester,
    /// The operator's name or the person's id.
    pub requester_id: Option<String>,
    /// The credential whose transaction it spent.
    pub credential_id: Option<String>,
}

/// A page of the time-stamp log, oldest first, for auditors.
pub fn log_page(services: &Services, after: i64, limit: i64) -> Result<Vec<LoggedTimeStamp>, ServiceError> {
    let rows = store::page(&mut *services.conn()?, after, limit.clamp(1, super::MAX_ROWS))?;
    Ok(rows
        .into_iter()
        .map(|r| LoggedTimeStamp {
            seq: r.seq,
            serial: r.serial,
            gen_time: r.gen_time,
            policy: r.policy,
            hash_algorithm: r.hash_algorithm,
            imprint: r.imprint,
            requester: r.requester,
            requester_id: r.requester_id,
            credential_id: r.credential_id,
        })
        .collect())
}
