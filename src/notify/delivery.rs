//! Delivering the outbox: e-mail by SMTP (lettre), SMS by POSTing JSON to an HTTP gateway. A failed
//! message is retried with a growing delay until `notify.max_attempts`, then marked `failed`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{SmtpTransport, Transport};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::Clock;
use crate::config::NotifyConfig;
use crate::db::outbox::{self, Message};
use crate::db::{self, DbPool};
use crate::domain::Channel;

/// How long a worker may hold a claimed message before another may try it.
const LEASE_SECS: i64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("notify settings: {0}")]
    Settings(String),
    /// The text (kept with the message for operators) may carry the recipient or the gateway's URL, so
    /// logs show only the stage that failed.
    #[error("{text}")]
    Send { stage: &'static str, text: String },
}

fn send_error(stage: &'static str, text: impl Into<String>) -> DeliveryError {
    DeliveryError::Send { stage, text: text.into() }
}

/// The configured ways out.
pub struct Delivery {
    smtp: SmtpTransport,
    from: Mailbox,
    sms_url: String,
    sms_token: Option<SecretString>,
    http: reqwest::blocking::Client,
    max_attempts: i32,
}

impl Delivery {
    pub fn from_config(config: &NotifyConfig) -> Result<Delivery, DeliveryError> {
        let smtp_url = config.smtp_url.as_deref().ok_or_else(|| DeliveryError::Settings("notify.smtp_url".into()))?;
        let smtp = SmtpTransport::from_url(smtp_url)
            .map_err(|e| DeliveryError::Settings(format!("notify.smtp_url: {e}")))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = config
            .email_from
            .parse::<Mailbox>()
            .map_err(|e| DeliveryError::Settings(format!("notify.email_from: {e}")))?;
        let sms_url =
            config.sms_gateway_url.clone().ok_or_else(|| DeliveryError::Settings("notify.sms_gateway_url".into()))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| DeliveryError::Settings(format!("HTTP client: {e}")))?;
        Ok(Delivery {
            smtp,
            from,
            sms_url,
            sms_token: config.sms_gateway_token.clone(),
            http,
            max_attempts: config.max_attempts,
        })
    }

    fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        match message.channel {
            Channel::Email => {
                let to = message
                    .recipient
                    .parse::<Mailbox>()
                    .map_err(|e| send_error("recipient", format!("recipient: {e}")))?;
                let email = lettre::Message::builder()
                    .from(self.from.clone())
                    .to(to)
                    .subject(&message.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(message.body.clone())
                    .map_err(|e| send_error("message", e.to_string()))?;
                self.smtp.send(&email).map(|_| ()).map_err(|e| send_error("smtp", format!("SMTP: {e}")))
            }
            Channel::Sms => {
                let mut request = self
                    .http
                    .post(&self.sms_url)
                    .json(&serde_json::json!({"to": message.recipient, "text": message.body}));
                if let Some(token) = &self.sms_token {
                    request = request.bearer_auth(token.expose_secret());
                }
                let response = request.send().map_err(|e| send_error("sms_gateway", format!("SMS gateway: {e}")))?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(send_error("sms_gateway", format!("SMS gateway answered {}", response.status())))
                }
            }
        }
    }

    /// Delivers what is due now; returns how many messages went out.
    pub fn deliver_due(&self, pool: &DbPool, clock: &dyn Clock) -> Result<usize, db::DbError> {
        let mut conn = pool.get()?;
        let due = outbox::due(&mut conn, clock.now(), 50)?;
        let mut sent = 0;
        for message in due {
            // The lease runs from this claim, not from the start of the batch: a slow batch must not
            // hand out leases that have already run out.
            let now = clock.now();
            if !outbox::claim(&mut conn, &message, now + LEASE_SECS)? {
                continue;
            }
            match self.send(&message) {
                Ok(()) => {
                    outbox::mark_sent(&mut conn, &message, clock.now())?;
                    sent += 1;
                }
                Err(e) => {
                    let attempts = message.attempts + 1;
                    let retry_at = now + 30 * i64::from(attempts).pow(2);
                    crate::metrics::METRICS.outbox_delivery_failures.inc();
                    let stage = match &e {
                        DeliveryError::Send { stage, .. } => *stage,
                        DeliveryError::Settings(_) => "settings",
                    };
                    tracing::warn!(id = message.id, channel = %message.channel, attempts, stage, "delivery failed");
                    outbox::mark_failed(&mut conn, &message, &e.to_string(), retry_at, attempts >= self.max_attempts)?;
                }
            }
        }
        Ok(sent)
    }
}
