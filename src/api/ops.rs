//! What operators and their tooling use: liveness and readiness probes, the Prometheus metrics, and
//! the middleware that gives every request an id, a log line and its place in the metrics.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::{Data, Json};
use actix_web::{get, HttpResponse};
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;

use super::error::Dialect;
use super::extract::run;
use crate::metrics::{self, METRICS};
use crate::service::health::{self, Readiness};
use crate::service::Services;
use crate::telemetry::{new_request_id, sane_request_id, with_request_id};

const TAG: &str = "Operations";

/// The request id header, read from callers and set on every response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok`: the process answers.
    pub status: String,
}

/// Liveness: the process is up and answers HTTP. Checks nothing else, so a slow database never gets a
/// healthy process restarted.
#[utoipa::path(get, tag = TAG, responses((status = 200, body = HealthResponse)))]
#[get("/healthz")]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into() })
}

/// Each readiness check: `ok`, or a short reason (no addresses, paths or server messages).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// The database answers and every migration is applied (`unreachable`, `migrations pending`).
    pub database: String,
    /// The HSM token answers and rssp's login to it was not refused (`session error`, `login refused`).
    pub hsm: String,
    /// The CA certificates are loaded and valid (`certificate expired`).
    pub ca: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready`, or `not_ready` (answered with 503).
    pub status: String,
    pub checks: ReadyChecks,
}

/// Readiness: whether this node can serve requests now (database reachable and migrated, HSM token
/// answering and logged in, CA loaded). 503 names each failing check. Answers within a few seconds.
#[utoipa::path(get, tag = TAG,
    responses((status = 200, body = ReadyResponse), (status = 503, body = ReadyResponse)))]
#[get("/readyz")]
pub async fn readyz(services: Data<Services>) -> HttpResponse {
    // The checks bound their own waits; this bounds the whole, blocking pool queue included.
    let checked = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        run(&services, Dialect::Lifecycle, |s| Ok(health::cached_readiness(s))),
    )
    .await;
    let readiness = match checked {
        Ok(Ok(readiness)) => readiness,
        _ => {
            let timeout = health::Check::Failed("timeout");
            Readiness { database: timeout, hsm: timeout, ca: timeout }
        }
    };
    let body = ReadyResponse {
        status: if readiness.ready() { "ready" } else { "not_ready" }.into(),
        checks: ReadyChecks {
            database: readiness.database.as_str().into(),
            hsm: readiness.hsm.as_str().into(),
            ca: readiness.ca.as_str().into(),
        },
    };
    if readiness.ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics in the text format. Where it is served depends on the configuration, so it is
/// mounted by `startup` rather than `api::routes`, and listed in the document through `ApiDoc`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = TAG,
    description = "Prometheus metrics (text format 0.0.4). Served on the main listener only in development mode \
                   without `metrics_listen`; with `metrics_listen` set it is served on that address only, and in \
                   production mode never on the main listener (404 there).",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "Not served on this listener", body = crate::api::error::ErrorBody)
    )
)]
pub async fn metrics(services: Data<Services>) -> HttpResponse {
    // The read gauges (pools, outbox backlog) are refreshed now; a failure only leaves them stale.
    let _ = run(&services, Dialect::Lifecycle, |s| {
        health::refresh_gauges(s);
        Ok(())
    })
    .await;
    HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).body(METRICS.render())
}

/// Gives the request an id (the caller's `X-Request-Id` when sane, a new UUID otherwise), runs it in a
/// span carrying `request_id`, returns the id in the response header, writes the access log line
/// (method, path, query parameter names only, status, latency) and counts it by route template.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id: Arc<str> = match req.headers().get(&X_REQUEST_ID).and_then(|v| sane_request_id(v.as_bytes())) {
        Some(id) => Arc::from(id),
        None => Arc::from(new_request_id()),
    };
    let span = tracing::info_span!("request", request_id = %id);
    let line = super::access_log_line(req.method().as_str(), req.uri());
    // HEAD is GET without the body (RFC 9110 §9.3.2): routed as GET; actix's HTTP codec noted the
    // HEAD when it read the request and sends the headers only.
    let mut req = req;
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let response = span.in_scope(|| next.call(req));
    let mut response = with_request_id(id.clone(), response).instrument(span.clone()).await?;
    let status = response.status();
    let elapsed = started.elapsed();
    // The matched route template (`/api/v1/orders/{id}`), never the raw path: bounded label values.
    let route = response.request().match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    METRICS.http_requests.with_label_values(&[route, status.as_str()]).inc();
    METRICS.http_duration.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(target: "rssp::access", status = status.as_u16(), latency_ms, "{line}"));
    Ok(response)
}
