//! Starting the server: bind, open the services, serve HTTP until shut down.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::HttpServer;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, error::ApiError};
use crate::background;
use crate::clock::Clock;
use crate::config::Config;
use crate::service::{Services, StartError};

/// A server that is listening.
pub struct RunningServer {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// The address of the separate metrics listener, when `metrics_listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub services: Data<Services>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics_server: Option<(ServerHandle, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (on SIGINT/SIGTERM it finishes in-flight requests first).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.task.await.map_err(std::io::Error::other)?;
        if let Some((handle, task)) = self.metrics_server {
            handle.stop(true).await;
            let _ = task.await;
        }
        result
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
        if let Some((handle, task)) = self.metrics_server {
            handle.stop(true).await;
            let _ = task.await;
        }
    }
}

/// Opens the services (database, HSM, CA) the way every command does.
pub async fn open_services(config: Config, clock: Arc<dyn Clock>, public_url: String) -> Result<Services, StartError> {
    tokio::task::spawn_blocking(move || Services::open(config, clock, public_url))
        .await
        .map_err(|e| StartError::Other(e.to_string()))?
}

/// Binds the listen address, opens the services and starts serving.
pub async fn start(config: Config, clock: Arc<dyn Clock>) -> Result<RunningServer, StartError> {
    let listen = config.listen_addr().map_err(|e| StartError::Other(e.to_string()))?;
    let listener =
        TcpListener::bind(listen).map_err(|e| StartError::Other(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| StartError::Other(e.to_string()))?;
    let public_url =
        config.public_url.clone().map(|u| u.trim_end_matches('/').to_string()).unwrap_or(format!("http://{addr}"));
    let metrics_listener = match config.metrics_listen_addr().map_err(|e| StartError::Other(e.to_string()))? {
        Some(metrics_listen) => Some(
            TcpListener::bind(metrics_listen)
                .map_err(|e| StartError::Other(format!("cannot listen on {metrics_listen} (metrics_listen): {e}")))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(|e| StartError::Other(e.to_string()))?;
    let workers = config.hsm.sessions.clamp(1, 8);
    let services = Data::new(open_services(config, clock, public_url).await?);
    log_summary(&services, addr, metrics_addr);
    let data = services.clone();
    // /metrics on the main listener only when no separate one is configured.
    let metrics_here = metrics_addr.is_none();
    let server = HttpServer::new(move || {
        let (app, openapi) = api::routes();
        let app = app.app_data(data.clone()).service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi));
        let app = if metrics_here { app.route("/metrics", web::get().to(api::ops::metrics)) } else { app };
        app.default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "Unknown method or path",
            ))
        }))
        .wrap(actix_web::middleware::from_fn(api::ops::observe))
    })
    .workers(workers)
    .shutdown_timeout(30)
    .listen(listener)
    .map_err(|e| StartError::Other(e.to_string()))?
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
            .map_err(|e| StartError::Other(e.to_string()))?
            .run();
            Some((server.handle(), tokio::spawn(server)))
        }
        None => None,
    };
    background::start(services.clone().into_inner())?;
    Ok(RunningServer { addr, metrics_addr, services, handle, task, metrics_server })
}

/// What an operator checks first in the log: which mode, data, database, HSM and CA this node runs
/// on, and where it listens. The database appears by its kind only: its URL may hold a password.
fn log_summary(services: &Services, addr: SocketAddr, metrics_addr: Option<SocketAddr>) {
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
        metrics_listen = %metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "(main listener)".into()),
        "rssp started"
    );
}
