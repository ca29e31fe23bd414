//! Prometheus metrics, served at `/metrics` in the text format.
//!
//! Every metric is registered once, at first use, in one registry of the process; the hot paths only
//! bump pre-registered counters. Labels are bounded sets: route templates (never raw paths), status
//! codes, algorithm and reason names from the code, never anything a client chose.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub(crate) http_requests: IntCounterVec,
    pub(crate) http_duration: HistogramVec,
    pub(crate) signatures: IntCounterVec,
    pub(crate) timestamps_issued: IntCounterVec,
    pub(crate) timestamps_rejected: IntCounterVec,
    pub(crate) ocsp_responses_signed: IntCounter,
    pub(crate) ocsp_responses: IntCounterVec,
    pub(crate) sad_refusals: IntCounterVec,
    pub(crate) otp_refusals: IntCounterVec,
    pub(crate) hsm_sessions_in_use: IntGauge,
    pub(crate) hsm_session_waits: IntCounter,
    pub(crate) hsm_session_timeouts: IntCounter,
    pub(crate) hsm_key_searches: IntCounterVec,
    pub(crate) db_connections: IntGaugeVec,
    pub(crate) db_pool_waits: IntCounter,
    pub(crate) db_pool_timeouts: IntCounter,
    pub(crate) outbox_backlog: IntGauge,
    pub(crate) outbox_delivery_failures: IntCounter,
    pub(crate) certificates_issued: IntCounter,
    pub(crate) certificates_revoked: IntCounter,
    pub(crate) scheduler_runs: IntCounterVec,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Latency buckets in seconds: from a cached read (a millisecond) to an RSA-3072 key generation.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    // The names and label sets are constants: registering them cannot fail but on a programming
    // error, which the unit test below would show.
    #[allow(clippy::expect_used)]
    fn new() -> Metrics {
        let registry = Registry::new();
        fn reg<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
            registry.register(Box::new(metric.clone())).expect("metric names are unique constants");
            metric
        }
        let counter = |name: &str, help: &str| reg(&registry, IntCounter::new(name, help).expect("valid metric"));
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help).expect("valid metric"));
        Metrics {
            http_requests: counter_vec(
                "rssp_http_requests_total",
                "HTTP requests answered, by route template and status code.",
                &["route", "status"],
            ),
            http_duration: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "rssp_http_request_duration_seconds",
                        "Time from receiving a request to its response, by route template.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route"],
                )
                .expect("valid metric"),
            ),
            signatures: counter_vec(
                "rssp_signatures_total",
                "Signatures made by signHash, by signature algorithm and CSC dialect (csc_v1, csc_v2).",
                &["algorithm", "dialect"],
            ),
            timestamps_issued: counter_vec(
                "rssp_timestamps_total",
                "Time-stamp tokens issued, by way: tsa (POST /tsa) or csc (signatures/timestamp).",
                &["through"],
            ),
            timestamps_rejected: counter_vec(
                "rssp_timestamp_rejections_total",
                "RFC 3161 requests rejected, by PKIFailureInfo (badAlg, badRequest, badDataFormat, ...).",
                &["failure"],
            ),
            ocsp_responses_signed: counter(
                "rssp_ocsp_responses_signed_total",
                "OCSP responses signed (those served from the cache are not counted here).",
            ),
            ocsp_responses: counter_vec(
                "rssp_ocsp_responses_total",
                "OCSP responses served, by how: cached (from this node's cache, on the async runtime) or computed (on a blocking thread: signed, revalidated, or an unsigned status such as malformedRequest).",
                &["served"],
            ),
            sad_refusals: counter_vec(
                "rssp_sad_refusals_total",
                "signHash requests refused for their SAD, by reason.",
                &["reason"],
            ),
            otp_refusals: counter_vec(
                "rssp_otp_refusals_total",
                "One-time codes refused, by reason (invalid, replayed, locked).",
                &["reason"],
            ),
            hsm_sessions_in_use: gauge("rssp_hsm_sessions_in_use", "HSM sessions checked out of the pool now."),
            hsm_session_waits: counter(
                "rssp_hsm_session_waits_total",
                "Times a request found every HSM session busy and waited for one.",
            ),
            hsm_session_timeouts: counter(
                "rssp_hsm_session_timeouts_total",
                "Times no HSM session came free within hsm.session_wait_ms (answered 503).",
            ),
            hsm_key_searches: counter_vec(
                "rssp_hsm_key_searches_total",
                "Searches of the HSM token for keys (kind: all, every key read into the index at a start or \
                 after a new login; one, a key the index does not know, made on another node). Signing with \
                 a key the index knows searches nothing.",
                &["kind"],
            ),
            db_connections: reg(
                &registry,
                IntGaugeVec::new(
                    Opts::new("rssp_db_pool_connections", "Database pool connections (state: in_use, idle)."),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            db_pool_waits: counter(
                "rssp_db_pool_waits_total",
                "Times a database connection was asked for while none was idle.",
            ),
            db_pool_timeouts: counter(
                "rssp_db_pool_timeouts_total",
                "Times no database connection came free in time (answered 503).",
            ),
            outbox_backlog: gauge(
                "rssp_outbox_backlog",
                "Outbox messages waiting for delivery (pending or being sent), as of the last scrape.",
            ),
            outbox_delivery_failures: counter(
                "rssp_outbox_delivery_failures_total",
                "Failed attempts to deliver an e-mail or SMS from the outbox.",
            ),
            certificates_issued: counter("rssp_certificates_issued_total", "End-entity certificates issued."),
            certificates_revoked: counter("rssp_certificates_revoked_total", "End-entity certificates revoked."),
            scheduler_runs: counter_vec(
                "rssp_scheduler_runs_total",
                "Runs of the lifecycle jobs, by outcome (ok, error).",
                &["outcome"],
            ),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on a metric family that is malformed, which these are not.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders() {
        METRICS.signatures.with_label_values(&["rsa_pkcs1_sha256", "csc_v2"]).inc();
        METRICS.scheduler_runs.with_label_values(&["ok"]).inc();
        let text = METRICS.render();
        assert!(text.contains("rssp_signatures_total{algorithm=\"rsa_pkcs1_sha256\",dialect=\"csc_v2\"}"));
        assert!(text.contains("# TYPE rssp_hsm_sessions_in_use gauge"));
        assert!(text.contains("# TYPE rssp_outbox_delivery_failures_total counter"));
    }
}
