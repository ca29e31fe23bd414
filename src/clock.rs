//! Time, injected: the server runs on the system clock; tests move a manual clock to reach expiry.

use std::sync::atomic::{AtomicI64, Ordering};

/// The source of the current time, so that tests can move it (see [`ManualClock`]).
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch (a time-stamp's genTime is rounded from it).
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

#[derive(Debug, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// The system clock plus an offset that tests move forward.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset: AtomicI64,
}

impl ManualClock {
    /// Moves the clock forward by `seconds` (backward when negative).
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.offset.load(Ordering::SeqCst)
    }

    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.offset.load(Ordering::SeqCst) * 1000
    }
}

/// Unix seconds as an HTTP date (RFC 9110 §5.6.7, IMF-fixdate): `Tue, 01 Dec 2026 16:00:00 GMT`.
pub fn http_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

/// A unix time as RFC 3339 (UTC), as the APIs and messages show times.
pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map(|t| t.to_rfc3339()).unwrap_or_default()
}
