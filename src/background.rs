//! Work that runs beside the HTTP server on plain threads (it blocks on the database, SMTP and HTTP):
//! the lifecycle jobs on a timer, and in production mode the delivery of the notification outbox.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Mode;
use crate::notify::delivery::Delivery;
use crate::service::{lifecycle_jobs, Services, StartError};

pub fn start(services: Arc<Services>) -> Result<(), StartError> {
    if services.config.mode == Mode::Production {
        let delivery = Delivery::from_config(&services.config.notify).map_err(|e| StartError::Other(e.to_string()))?;
        let interval = Duration::from_secs(services.config.notify.delivery_interval_secs);
        let svc = services.clone();
        spawn("rssp-outbox", move || loop {
            match delivery.deliver_due(&svc.db, svc.now()) {
                Ok(0) => std::thread::sleep(interval),
                // More may be waiting: go again at once.
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "outbox delivery");
                    std::thread::sleep(interval);
                }
            }
        })?;
    }
    let interval = Duration::from_secs(services.config.lifecycle.scheduler_interval_secs);
    spawn("rssp-scheduler", move || loop {
        std::thread::sleep(interval);
        match lifecycle_jobs::run(&services) {
            Ok(report) if report != lifecycle_jobs::JobReport::default() => tracing::info!(?report, "lifecycle jobs"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "lifecycle jobs"),
        }
    })?;
    Ok(())
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), StartError> {
    std::thread::Builder::new().name(name.to_string()).spawn(work).map(|_| ()).map_err(|e| StartError::Other(e.to_string()))
}
