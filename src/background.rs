//! Work that runs beside the HTTP server on plain threads (it blocks on the database, SMTP and HTTP):
//! the lifecycle jobs on a timer, and in production mode the delivery of the notification outbox.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Mode;
use crate::notify::delivery::Delivery;
use crate::service::{lifecycle_jobs, Services, StartError};

pub fn start(services: Arc<Services>) -> Result<(), StartError> {
    if services.config.mode == Mode::Production {
        let interval = Duration::from_secs(services.config.notify.delivery_interval_secs);
        let svc = services.clone();
        // The blocking HTTP client must be made (and dropped) outside the async runtime, so the worker
        // builds it and reports whether the settings work before the server counts as started.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        spawn("rssp-outbox", move || {
            let delivery = match Delivery::from_config(&svc.config.notify) {
                Ok(d) => {
                    let _ = ready_tx.send(Ok(()));
                    d
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            deliver_forever(&svc, &delivery, interval);
        })?;
        ready_rx.recv().map_err(|e| StartError::Other(e.to_string()))?.map_err(StartError::Other)?;
    }
    let interval = Duration::from_secs(services.config.lifecycle.scheduler_interval_secs);
    spawn("rssp-scheduler", move || loop {
        std::thread::sleep(interval);
        let result = lifecycle_jobs::run(&services);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        crate::metrics::METRICS.scheduler_runs.with_label_values(&[outcome]).inc();
        match result {
            Ok(report) if report != lifecycle_jobs::JobReport::default() => tracing::info!(?report, "lifecycle jobs"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "lifecycle jobs"),
        }
    })?;
    Ok(())
}

fn deliver_forever(svc: &Services, delivery: &Delivery, interval: Duration) {
    loop {
        match delivery.deliver_due(&svc.db, svc.clock.as_ref()) {
            Ok(0) => std::thread::sleep(interval),
            // More may be waiting: go again at once.
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "outbox delivery");
                std::thread::sleep(interval);
            }
        }
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), StartError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
        .map(|_| ())
        .map_err(|e| StartError::Other(e.to_string()))
}
