//! E-mail and SMS through a transactional outbox: a message is written in the same transaction as the
//! change it tells about, so it goes out exactly when the change commits. In production mode a worker
//! delivers the outbox (SMTP, an HTTP SMS gateway); in development mode messages stay in the outbox,
//! readable through the admin API.
//!
//! A notice that carries a code or a link is marked `secret` when it is queued. In production mode its
//! body exists in clear only until delivery: the admin API redacts it, and the update that marks it
//! sent (or given up) wipes it. Bodies are never logged.

pub mod delivery;
pub mod templates;

use crate::config::{Config, Mode};
use crate::db::outbox::{self, NewMessage};
use crate::db::DbConnection;
use crate::domain::{Channel, OutboxStatus};

/// A message to one person.
#[derive(Debug, Clone)]
pub struct Notice {
    pub channel: Channel,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The body carries a code or a link meant for the person alone. In production mode such a body
    /// is wiped once delivered and the admin API never shows it; development mode keeps showing it.
    pub secret: bool,
}

impl Notice {
    pub fn email(to: &str, subject: impl Into<String>, body: impl Into<String>) -> Notice {
        Notice {
            channel: Channel::Email,
            to: to.to_string(),
            subject: subject.into(),
            body: body.into(),
            secret: false,
        }
    }

    pub fn sms(to: &str, body: impl Into<String>) -> Notice {
        Notice { channel: Channel::Sms, to: to.to_string(), subject: String::new(), body: body.into(), secret: false }
    }

    /// Marks the notice as carrying a code or a link.
    pub fn carrying_secret(self) -> Notice {
        Notice { secret: true, ..self }
    }
}

/// True when the admin API may show the bodies of secret-bearing messages: only in development mode,
/// where nothing is delivered and tests and local runs read codes and links from the outbox.
pub fn secret_bodies_visible(config: &Config) -> bool {
    config.mode == Mode::Development
}

/// Puts the notice in the outbox, inside the caller's transaction.
pub fn enqueue(
    conn: &mut DbConnection,
    config: &Config,
    now: i64,
    user_id: Option<&str>,
    notice: Notice,
) -> diesel::QueryResult<()> {
    let status = match config.mode {
        Mode::Development => OutboxStatus::Held,
        Mode::Production => OutboxStatus::Pending,
    };
    outbox::insert(
        conn,
        &NewMessage {
            channel: notice.channel,
            recipient: notice.to,
            subject: notice.subject,
            body: notice.body,
            user_id: user_id.map(str::to_string),
            status,
            next_attempt_at: now,
            created_at: now,
            secret: notice.secret,
        },
    )
}
