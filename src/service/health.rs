//! Readiness and the gauges refreshed when metrics are scraped. Every check waits briefly: a probe
//! must answer within the load balancer's timeout, not the pool's.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db;
use crate::hsm::HsmError;
use crate::metrics::METRICS;

use super::Services;

/// Longest wait for a pooled database connection in a readiness check.
const CHECK_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for a connection to count the outbox backlog at a scrape.
const SCRAPE_WAIT: Duration = Duration::from_millis(500);

/// One readiness check: passed, or why not in a fixed word (never a server's error text, which may
/// name hosts, roles or paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ok,
    Failed(&'static str),
}

impl Check {
    pub fn is_ok(self) -> bool {
        self == Check::Ok
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Check::Ok => "ok",
            Check::Failed(why) => why,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// Reachable, with every migration applied.
    pub database: Check,
    /// The signing token (and the CA token, when separate) answering, and rssp's login not refused.
    pub hsm: Check,
    /// The CA certificates loaded and within their validity.
    pub ca: Check,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.database.is_ok() && self.hsm.is_ok() && self.ca.is_ok()
    }
}

/// How long a readiness result is reused.
const READINESS_REUSE: Duration = Duration::from_secs(1);

/// The last readiness result and the check in flight: probes are unauthenticated, so a flood of them
/// must not turn into a flood of database connections and token calls.
#[derive(Debug, Default)]
pub struct ReadinessCache {
    last: Mutex<Option<(Instant, Readiness)>>,
    running: Mutex<()>,
}

/// Readiness as of at most a second ago. While one check runs, other probes get the last result
/// instead of queueing behind it (only the very first probes, with no result yet, run their own).
pub fn cached_readiness(services: &Services) -> Readiness {
    let cache = &services.readiness;
    let last = || *cache.last.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, readiness)) = last() {
        if at.elapsed() < READINESS_REUSE {
            return readiness;
        }
    }
    let running = cache.running.try_lock();
    if running.is_err() {
        if let Some((_, readiness)) = last() {
            return readiness;
        }
    }
    let readiness = readiness(services);
    *cache.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), readiness));
    readiness
}

pub fn readiness(services: &Services) -> Readiness {
    let database = match db::check_ready(&services.db, CHECK_WAIT) {
        Ok(()) => Check::Ok,
        Err(why) => Check::Failed(why),
    };
    let hsm = hsm_check(services);
    let now = services.now();
    let ca = if services.ca.root.not_after <= now || services.ca.issuing.not_after <= now {
        Check::Failed("certificate expired")
    } else {
        Check::Ok
    };
    let readiness = Readiness { database, hsm, ca };
    if !readiness.ready() {
        tracing::warn!(database = database.as_str(), hsm = hsm.as_str(), ca = ca.as_str(), "not ready");
    }
    readiness
}

/// The HSM check asks the token without taking a session from requests (see [`KeyStore::check`]).
///
/// [`KeyStore::check`]: crate::hsm::KeyStore::check
fn hsm_check(services: &Services) -> Check {
    let stores = std::iter::once(&services.keystore).chain(services.ca_keystore.as_ref());
    for store in stores {
        match store.check() {
            Ok(()) => {}
            // Logged once, when the token refused the PIN.
            Err(HsmError::LoginRefused) => return Check::Failed("login refused"),
            Err(e) => {
                tracing::warn!(error = %e, "HSM readiness check failed");
                return Check::Failed("session error");
            }
        }
    }
    Check::Ok
}

/// Brings the gauges that are read rather than counted up to date: the database pool and the outbox
/// backlog. A busy pool leaves the backlog at its last value rather than delay the scrape.
pub fn refresh_gauges(services: &Services) {
    db::observe_pool(&services.db);
    if let Ok(mut conn) = db::checkout_within(&services.db, SCRAPE_WAIT) {
        match db::outbox::backlog(&mut conn) {
            Ok(count) => METRICS.outbox_backlog.set(count),
            Err(e) => tracing::warn!(error = %e, "counting the outbox backlog"),
        }
    }
}
