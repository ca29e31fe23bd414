//! The notification outbox. Messages are inserted in the transaction of the change they tell about;
//! a delivery worker claims them with a conditional update, so two nodes never send one twice.

use diesel::prelude::*;

use super::schema::outbox;
use super::DbConnection;
use crate::domain::{Channel, OutboxStatus};

/// What a secret-bearing message's body becomes once it left (production mode): the code or link it
/// carried exists in clear only on its way to the person.
pub const WIPED_BODY: &str = "[wiped after delivery: the message carried a code or link for the person only]";

/// A message to put into the outbox.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewMessage {
    /// E-mail or SMS.
    pub channel: Channel,
    /// The e-mail address or phone number.
    pub recipient: String,
    /// E-mail subject (empty for SMS).
    pub subject: String,
    /// The text.
    pub body: String,
    /// The user it is for, if any.
    pub user_id: Option<String>,
    /// Where it starts: pending, or held in development mode.
    pub status: OutboxStatus,
    pub(crate) next_attempt_at: i64,
    pub(crate) created_at: i64,
    /// Carries a code or a link (see `notify::Notice::secret`).
    pub secret: bool,
}

/// A message in the outbox.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct Message {
    /// The outbox's sequence number.
    pub id: i64,
    /// E-mail or SMS.
    pub channel: Channel,
    /// The e-mail address or phone number.
    pub recipient: String,
    /// E-mail subject (empty for SMS).
    pub subject: String,
    /// The text, or [`WIPED_BODY`] once a secret-bearing message was delivered.
    pub body: String,
    /// The user it is for, if any.
    pub user_id: Option<String>,
    /// Where the message stands.
    pub status: OutboxStatus,
    pub(crate) attempts: i32,
    /// When the next delivery attempt is due, Unix seconds.
    pub next_attempt_at: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: i64,
    /// When it was delivered, Unix seconds.
    pub sent_at: Option<i64>,
    /// Carries a code or a link for the person only.
    pub secret: bool,
}

/// Puts a message into the outbox (in the transaction of the change it tells about).
pub fn insert(conn: &mut DbConnection, message: &NewMessage) -> QueryResult<()> {
    diesel::insert_into(outbox::table).values(message).execute(conn).map(|_| ())
}

/// Messages waiting to go out (pending, or claimed and being sent): the delivery backlog.
pub fn backlog(conn: &mut DbConnection) -> QueryResult<i64> {
    outbox::table.filter(outbox::status.eq_any([OutboxStatus::Pending, OutboxStatus::Sending])).count().get_result(conn)
}

/// Messages oldest first, after id `after`, optionally to one recipient.
pub fn list(conn: &mut DbConnection, recipient: Option<&str>, after: i64, limit: i64) -> QueryResult<Vec<Message>> {
    let mut query = outbox::table.filter(outbox::id.gt(after)).select(Message::as_select()).into_boxed();
    if let Some(recipient) = recipient {
        query = query.filter(outbox::recipient.eq(recipient.to_string()));
    }
    query.order(outbox::id.asc()).limit(limit).load(conn)
}

/// Messages due for delivery: pending, or claimed by a worker that did not finish in time.
pub fn due(conn: &mut DbConnection, now: i64, limit: i64) -> QueryResult<Vec<Message>> {
    outbox::table
        .filter(outbox::status.eq(OutboxStatus::Pending).or(outbox::status.eq(OutboxStatus::Sending)))
        .filter(outbox::next_attempt_at.le(now))
        .order(outbox::id.asc())
        .limit(limit)
        .select(Message::as_select())
        .load(conn)
}

/// Claims a due message until `lease_until`; false when another worker has it.
pub fn claim(conn: &mut DbConnection, message: &Message, lease_until: i64) -> QueryResult<bool> {
    let changed = diesel::update(
        outbox::table
            .find(message.id)
            .filter(outbox::status.eq(message.status))
            .filter(outbox::attempts.eq(message.attempts)),
    )
    .set((
        outbox::status.eq(OutboxStatus::Sending),
        outbox::attempts.eq(message.attempts + 1),
        outbox::next_attempt_at.eq(lease_until),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Marks a message sent; a secret-bearing one loses its body in the same update.
pub fn mark_sent(conn: &mut DbConnection, message: &Message, now: i64) -> QueryResult<()> {
    diesel::update(outbox::table.find(message.id))
        .set((
            outbox::status.eq(OutboxStatus::Sent),
            outbox::sent_at.eq(Some(now)),
            outbox::last_error.eq(None::<String>),
            outbox::body.eq(body_after_delivery(message)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Records a failed try: retried at `retry_at`, or given up when `give_up` (a secret-bearing message
/// given up loses its body too: nobody will send it any more).
pub fn mark_failed(
    conn: &mut DbConnection,
    message: &Message,
    error: &str,
    retry_at: i64,
    give_up: bool,
) -> QueryResult<()> {
    let status = if give_up { OutboxStatus::Failed } else { OutboxStatus::Pending };
    let body = if give_up { body_after_delivery(message) } else { message.body.clone() };
    diesel::update(outbox::table.find(message.id))
        .set((
            outbox::status.eq(status),
            outbox::last_error.eq(Some(error)),
            outbox::next_attempt_at.eq(retry_at),
            outbox::body.eq(body),
        ))
        .execute(conn)
        .map(|_| ())
}

fn body_after_delivery(message: &Message) -> String {
    if message.secret {
        WIPED_BODY.to_string()
    } else {
        message.body.clone()
    }
}
