//! Work that runs beside the HTTP server on plain threads (it blocks on the database, SMTP and HTTP):
//! the lifecycle jobs on a timer, and in production mode the delivery of the notification outbox.
//! [`Workers::stop`] ends them between two runs, for a graceful shutdown.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Mode;
use crate::notify::delivery::Delivery;
use crate::service::{lifecycle_jobs, Services, StartError};

/// The running background threads and the flag that stops them.
pub struct Workers {
    stop: Arc<StopFlag>,
    threads: Vec<JoinHandle<()>>,
}

/// Set once at shutdown; a worker waiting for its next run wakes up at once instead of sleeping on.
#[derive(Default)]
struct StopFlag {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl StopFlag {
    /// Sleeps up to `interval`; true when the workers are to stop.
    fn wait(&self, interval: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (stopped, _) =
            self.changed.wait_timeout_while(stopped, interval, |stopped| !*stopped).unwrap_or_else(|e| e.into_inner());
        *stopped
    }

    fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }
}

impl Workers {
    /// Asks every worker to stop and waits until each has finished what it was doing (a delivery
    /// or a job run in progress completes; none starts after this).
    pub fn stop(self) {
        self.stop.set();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a background worker panicked");
            }
        }
    }
}

pub fn start(services: Arc<Services>) -> Result<Workers, StartError> {
    let stop = Arc::new(StopFlag::default());
    let mut threads = Vec::new();
    if services.config.mode == Mode::Production {
        let interval = Duration::from_secs(services.config.notify.delivery_interval_secs);
        let svc = services.clone();
        let flag = stop.clone();
        // The blocking HTTP client must be made (and dropped) outside the async runtime, so the worker
        // builds it and reports whether the settings work before the server counts as started.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        threads.push(spawn("rssp-outbox", move || {
            let delivery = match Delivery::from_config(&svc.config.notify) {
                Ok(d) => {
                    let _ = ready_tx.send(Ok(()));
                    d
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            deliver_until_stopped(&svc, &delivery, interval, &flag);
        })?);
        ready_rx
            .recv()
            .map_err(|e| StartError::failed("the outbox worker ended before it started", e))?
            .map_err(|e| StartError::failed("starting the outbox worker", e))?;
    }
    let interval = Duration::from_secs(services.config.lifecycle.scheduler_interval_secs);
    let flag = stop.clone();
    threads.push(spawn("rssp-scheduler", move || {
        while !flag.wait(interval) {
            let result = lifecycle_jobs::run(&services);
            let outcome = if result.is_ok() { "ok" } else { "error" };
            crate::metrics::METRICS.scheduler_runs.with_label_values(&[outcome]).inc();
            match result {
                Ok(report) if report != lifecycle_jobs::JobReport::default() => {
                    tracing::info!(?report, "lifecycle jobs")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %crate::telemetry::error_chain(&e), "lifecycle jobs"),
            }
        }
    })?);
    Ok(Workers { stop, threads })
}

fn deliver_until_stopped(svc: &Services, delivery: &Delivery, interval: Duration, stop: &StopFlag) {
    while !stop.is_set() {
        match delivery.deliver_due(&svc.db, svc.clock.as_ref()) {
            Ok(0) => {
                stop.wait(interval);
            }
            // More may be waiting: go again at once.
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "outbox delivery");
                stop.wait(interval);
            }
        }
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
        .map_err(|e| StartError::failed(format!("starting the {name} thread"), e))
}
