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
    pub services: Data<Services>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (on SIGINT/SIGTERM it finishes in-flight requests first).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
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
    let workers = config.hsm.sessions.clamp(1, 8);
    let services = Data::new(open_services(config, clock, public_url).await?);
    let data = services.clone();
    let server = HttpServer::new(move || {
        let (app, openapi) = api::routes();
        app.app_data(data.clone())
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi))
            .default_service(web::to(|| async {
                Err::<actix_web::HttpResponse, _>(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request",
                    "Unknown method or path",
                ))
            }))
            .wrap(
                actix_web::middleware::Logger::new("%{request}xi %s %Dms")
                    .custom_request_replace("request", |req| api::access_log_line(req.method().as_str(), req.uri())),
            )
    })
    .workers(workers)
    .shutdown_timeout(30)
    .listen(listener)
    .map_err(|e| StartError::Other(e.to_string()))?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    background::start(services.clone().into_inner())?;
    Ok(RunningServer { addr, services, handle, task })
}
