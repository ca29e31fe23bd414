//! Logging set-up and the request id that ties a request's log lines and audit records together.
//!
//! The request id travels in two hops: the HTTP middleware puts it in a task-local for the request's
//! future (so every handler of that request sees it, and only that request), and `api::extract::run`
//! carries it onto the blocking thread that runs the use case, where [`RequestScope`] holds it in a
//! thread-local until the use case returns. The audit trail reads it from there. Nothing else sets it,
//! so commands and background jobs write records without one, and a blocking thread never keeps the
//! id of a request it no longer runs.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

/// The filter used when `RSSP_LOG` is unset: info for rssp, quiet actix worker chatter.
const DEFAULT_FILTER: &str = "info,actix_server=warn";

/// Why logging could not be set up; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum LogSetupError {
    /// `RSSP_LOG` is no valid tracing filter.
    #[error("bad setting RSSP_LOG: {0}")]
    Filter(String),
    /// `RSSP_LOG_FORMAT` is neither `json` nor `text`.
    #[error("bad setting RSSP_LOG_FORMAT: {0:?} is not one of json, text")]
    Format(String),
    /// The global subscriber could not be installed.
    #[error("logging: {0}")]
    Init(String),
}

/// How log lines are written (`RSSP_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when standard error is a terminal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Reads `RSSP_LOG` (a tracing `EnvFilter`) and `RSSP_LOG_FORMAT` (`json` or `text`).
pub fn settings_from_env() -> Result<(EnvFilter, LogFormat), LogSetupError> {
    let filter = match std::env::var("RSSP_LOG") {
        Ok(value) if !value.trim().is_empty() => {
            EnvFilter::builder().parse(value.trim()).map_err(|e| LogSetupError::Filter(e.to_string()))?
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => EnvFilter::new(DEFAULT_FILTER),
        Err(std::env::VarError::NotUnicode(_)) => return Err(LogSetupError::Filter("not valid UTF-8".into())),
    };
    let format = match std::env::var("RSSP_LOG_FORMAT").ok().as_deref().map(str::trim) {
        None | Some("") | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(LogSetupError::Format(other.to_string())),
    };
    Ok((filter, format))
}

/// Installs the global subscriber, writing to standard error (standard output is the commands' output).
pub fn init_logging() -> Result<(), LogSetupError> {
    let (filter, format) = settings_from_env()?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        // Every span of the line (the request span carries `request_id`) is listed with its fields.
        LogFormat::Json => builder.json().with_current_span(false).with_span_list(true).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    result.map_err(|e| LogSetupError::Init(e.to_string()))
}

/// An error and its causes (each `source()`), joined with ": " for a log line or a message, leaving out
/// a cause whose text is already there (many errors repeat their source in their own text).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let part = cause.to_string();
        let part = part.trim();
        if !part.is_empty() && !text.contains(part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(part);
        }
        next = cause.source();
    }
    text
}

/// Longest request id taken from a caller.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The caller's `X-Request-Id` when it is sane (1 to 64 characters of `[A-Za-z0-9._:-]`): it goes
/// into log lines and the audit trail, so nothing else is taken from outside.
pub fn sane_request_id(value: &[u8]) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// A new request id (UUID v4).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

tokio::task_local! {
    /// The id of the HTTP request whose future is running (set by the request middleware).
    static TASK_REQUEST_ID: Arc<str>;
}

thread_local! {
    /// The id of the request whose use case this blocking thread runs (see [`RequestScope`]).
    static THREAD_REQUEST_ID: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Runs the request's future with its id in scope, so that [`RequestId::current`] finds it from inside
/// the request's handlers.
pub async fn with_request_id<F: std::future::Future>(id: Arc<str>, future: F) -> F::Output {
    TASK_REQUEST_ID.scope(id, future).await
}

/// The request id of the current request, captured in async code to be carried to a blocking thread.
#[derive(Debug, Clone, Default)]
pub struct RequestId(Option<Arc<str>>);

impl RequestId {
    /// The id of the request being served on this task or thread, if any.
    pub fn current() -> RequestId {
        let from_task = TASK_REQUEST_ID.try_with(Arc::clone).ok();
        RequestId(from_task.or_else(|| THREAD_REQUEST_ID.with(|id| id.borrow().clone())))
    }

    /// The id, when there is one.
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Makes this the current request id of this thread until the returned scope is dropped.
    pub fn enter(self) -> RequestScope {
        let previous = THREAD_REQUEST_ID.with(|id| id.replace(self.0));
        RequestScope { previous }
    }
}

/// While alive, the thread's current request id is the one entered; dropping it restores the one
/// before (none, on a pool thread), also when the use case panics.
pub struct RequestScope {
    previous: Option<Arc<str>>,
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        THREAD_REQUEST_ID.with(|id| *id.borrow_mut() = previous);
    }
}

/// The request id the audit trail stores with a record written on this thread.
pub fn current_request_id() -> Option<String> {
    RequestId::current().as_deref().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_taken_and_odd_ones_refused() {
        assert_eq!(sane_request_id(b"abc-123_x.y:z"), Some("abc-123_x.y:z"));
        assert_eq!(sane_request_id(&[b'a'; 64]), Some("a".repeat(64).as_str()));
        assert_eq!(sane_request_id(&[b'a'; 65]), None);
        assert_eq!(sane_request_id(b""), None);
        assert_eq!(sane_request_id(b"a b"), None);
        assert_eq!(sane_request_id(b"a\nb"), None);
        assert_eq!(sane_request_id("é".as_bytes()), None);
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("{text}")]
        struct E {
            text: &'static str,
            #[source]
            source: Option<Box<E>>,
        }
        let c = E { text: "c", source: None };
        let b = E { text: "b: c", source: Some(Box::new(c)) };
        let a = E { text: "a", source: Some(Box::new(b)) };
        assert_eq!(error_chain(&a), "a: b: c");
    }

    #[test]
    fn a_thread_scope_ends_with_its_guard() {
        assert_eq!(current_request_id(), None);
        {
            let _scope = RequestId(Some(Arc::from("r1"))).enter();
            assert_eq!(current_request_id().as_deref(), Some("r1"));
        }
        assert_eq!(current_request_id(), None);
    }
}
