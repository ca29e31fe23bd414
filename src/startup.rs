//! Starting the server: bind, open the services, serve HTTP until shut down.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Data};
use actix_web::HttpServer;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, edges};
use crate::background;
use crate::clock::Clock;
use crate::config::Config;
use crate::hsm;
use crate::service::{Services, StartError};

/// A server that is listening.
pub struct RunningServer {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The address of the separate metrics listener, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// The use cases the server runs on, for tests to reach past HTTP.
    pub services: Data<Services>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: background::Workers,
    metrics_server: Option<(ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl RunningServer {
    /// `http://` and the bound address: where a client reaches the server.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: no new connections, requests in
    /// flight finish within `http.shutdown_grace_secs`, the background workers stop, and the HSM
    /// sessions are closed and the PKCS#11 module finalized. For the `serve` command: the module is
    /// shared by everything in the process.
    pub async fn wait(self) -> std::io::Result<()> {
        let served = self.task.await.map_err(std::io::Error::other)?;
        if let Some((handle, task)) = self.metrics_server {
            handle.stop(true).await;
            let _ = task.await;
        }
        tracing::info!("HTTP server stopped");
        stop_workers(self.workers).await;
        close_hsm(self.services).await;
        served
    }

    /// Stops serving (requests in flight finish first), stops the background workers and closes this
    /// server's HSM sessions. The PKCS#11 module stays initialised: other servers in the same process
    /// (the tests start many) may still use it.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
        if let Some((handle, task)) = self.metrics_server {
            handle.stop(true).await;
            let _ = task.await;
        }
        stop_workers(self.workers).await;
        match last_copy(self.services).await {
            // Closing sessions calls into the module: off the async threads.
            Some(services) => {
                let _ = tokio::task::spawn_blocking(move || drop(services)).await;
            }
            None => tracing::warn!("a request outlived the grace period: its HSM sessions close when it ends"),
        }
    }
}

async fn stop_workers(workers: background::Workers) {
    // Joining waits for a job run or a delivery in progress: off the async threads.
    if tokio::task::spawn_blocking(move || workers.stop()).await.is_ok() {
        tracing::info!("background workers stopped");
    }
}

/// The services once every other copy is gone. The HTTP workers release theirs as their threads end,
/// so this waits a moment for the last one; None when a request still holds a copy after 5 s.
async fn last_copy(services: Data<Services>) -> Option<Services> {
    let mut services = services.into_inner();
    for _ in 0..50 {
        match Arc::try_unwrap(services) {
            Ok(only) => return Some(only),
            Err(shared) => {
                services = shared;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    None
}

/// Drops the services (their key stores close every HSM session) and finalizes the module.
async fn close_hsm(services: Data<Services>) {
    let Some(only) = last_copy(services).await else {
        tracing::warn!("a request outlived the grace period: its HSM sessions close when the process exits");
        return;
    };
    let closed = tokio::task::spawn_blocking(move || {
        drop(only);
        hsm::finalize_modules()
    })
    .await;
    if closed.is_ok() {
        tracing::info!("HSM sessions closed");
    }
}

/// Resolves on the first SIGTERM (service managers, orchestrators) or SIGINT (a terminal's ctrl-C);
/// the server then drains gracefully.
async fn termination_signal(grace_secs: u64) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM and SIGINT: stop the server with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, grace_secs, "shutting down: no new connections, requests in flight may finish");
}

/// Opens the services (database, HSM, CA) the way every command does.
pub async fn open_services(config: Config, clock: Arc<dyn Clock>, public_url: String) -> Result<Services, StartError> {
    tokio::task::spawn_blocking(move || Services::open(config, clock, public_url))
        .await
        .map_err(|e| StartError::failed("opening the services", e))?
}

/// Binds the listen address, opens the services and starts serving.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<RunningServer, StartError> {
    let listen = config.listen_addr()?;
    let listener =
        TcpListener::bind(listen).map_err(|e| StartError::failed(format!("cannot listen on {listen}"), e))?;
    let addr = listener.local_addr().map_err(|e| StartError::failed("the listening address", e))?;
    let public_url =
        config.public_url.clone().map(|u| u.trim_end_matches('/').to_string()).unwrap_or(format!("http://{addr}"));
    let metrics_listener = match config.metrics_listen_addr()? {
        Some(metrics_listen) => Some(
            TcpListener::bind(metrics_listen)
                .map_err(|e| StartError::failed(format!("cannot listen on {metrics_listen} (metrics_listen)"), e))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(|e| StartError::failed("the metrics listening address", e))?;
    let production = config.mode == crate::config::Mode::Production;
    let workers = config.hsm.sessions.clamp(1, 8);
    let http = config.http.clone();
    let services = Data::new(open_services(config, clock, public_url).await?);
    log_summary(&services, addr, metrics_addr, production);
    let data = services.clone();
    let allowed = edges::AllowedMethods::from_openapi(&api::routes().1);
    // /metrics on the main listener only in development mode without a separate listener: in production
    // the counts of signatures, refusals and pool pressure are for the operator, not the public.
    let metrics_here = metrics_addr.is_none() && !production;
    let allowed = Data::new(if metrics_here { allowed } else { allowed.without("/metrics") });
    let server = HttpServer::new(move || {
        let (app, openapi) = api::routes();
        let app = app
            .app_data(data.clone())
            .app_data(allowed.clone())
            .app_data(edges::query_config())
            .app_data(edges::path_config())
            // Swagger UI fetches the document by a relative URL (from /docs/ up to /openapi.json), so it
            // still finds it when a reverse proxy serves rssp under a path prefix.
            .service(
                SwaggerUi::new("/docs/{_:.*}")
                    .url("/openapi.json", openapi)
                    .config(utoipa_swagger_ui::Config::new(["../openapi.json"])),
            )
            .route("/docs", web::get().to(edges::docs_redirect));
        let app = if metrics_here { app.route("/metrics", web::get().to(api::ops::metrics)) } else { app };
        app.default_service(web::to(edges::no_route)).wrap(actix_web::middleware::from_fn(api::ops::observe))
    })
    .workers(workers)
    // Longer than clients keep idle connections, so none is closed under a request (see HttpConfig).
    .keep_alive(match http.keep_alive_secs {
        0 => actix_web::http::KeepAlive::Disabled,
        secs => actix_web::http::KeepAlive::Timeout(Duration::from_secs(secs)),
    })
    .client_request_timeout(Duration::from_secs(http.request_timeout_secs))
    // actix counts connections per worker.
    .max_connections(http.max_connections.div_ceil(workers).max(1))
    .shutdown_timeout(http.shutdown_grace_secs)
    .shutdown_signal(termination_signal(http.shutdown_grace_secs))
    .listen(listener)
    .map_err(|e| StartError::failed("serving HTTP", e))?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    let metrics_server = match metrics_listener {
        Some(listener) => {
            let data = services.clone();
            let server = HttpServer::new(move || {
                actix_web::App::new().app_data(data.clone()).route("/metrics", web::get().to(api::ops::metrics))
            })
            .workers(1)
            .shutdown_timeout(5)
            .listen(listener)
            .map_err(|e| StartError::failed("serving the metrics", e))?
            .run();
            Some((server.handle(), tokio::spawn(server)))
        }
        None => None,
    };
    let workers = match background::start(services.clone().into_inner()) {
        Ok(workers) => workers,
        Err(e) => {
            handle.stop(false).await;
            if let Some((metrics, _)) = &metrics_server {
                metrics.stop(false).await;
            }
            return Err(e);
        }
    };
    Ok(RunningServer { addr, metrics_addr, services, handle, task, metrics_server, workers })
}

/// What an operator checks first in the log: which mode, data, database, HSM and CA this node runs
/// on, and where it listens. The database appears by its kind only: its URL may hold a password.
fn log_summary(services: &Services, addr: SocketAddr, metrics_addr: Option<SocketAddr>, production: bool) {
    let metrics_listen = match metrics_addr {
        Some(addr) => addr.to_string(),
        None if production => "(off: production mode serves /metrics only on metrics_listen)".into(),
        None => "(main listener)".into(),
    };
    let config = &services.config;
    let database = if config.database_url().starts_with("sqlite://") { "sqlite" } else { "postgres" };
    tracing::info!(
        mode = ?config.mode,
        data_dir = %config.data_dir.display(),
        database,
        hsm_module = %config.hsm.module.display(),
        hsm_token = %config.hsm.token_label,
        hsm_ca_token = config.hsm.ca_token_label.as_deref().unwrap_or("(same)"),
        ca_subject = %services.ca.issuing.name,
        public_url = %services.public_url,
        listen = %addr,
        metrics_listen = %metrics_listen,
        "rssp started"
    );
}
