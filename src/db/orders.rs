//! Orders of packages, the webhook events already handled, identity checks and uploaded identity documents.

use diesel::prelude::*;

use super::schema::{identity_checks, identity_documents, orders, webhook_events};
use super::DbConnection;
use crate::domain::{CheckKind, CheckStatus, OrderStatus, Purpose};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: String,
    pub user_id: String,
    pub package_id: String,
    pub purpose: Purpose,
    pub status: OrderStatus,
    pub validity_years: i32,
    pub transactions: i32,
    pub net_cents: i64,
    pub vat_cents: i64,
    pub gross_cents: i64,
    pub currency: String,
    pub invoice: String,
    pub invoice_number: Option<String>,
    pub payment_ref: Option<String>,
    pub credential_id: Option<String>,
    pub new_credential_id: Option<String>,
    pub personal_data_confirmed: bool,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    pub fulfilled_at: Option<i64>,
    /// Rekey: the names the person asks for; they reach the account and the certificate only once
    /// the rekey's identity check is accepted.
    pub requested_given_name: Option<String>,
    pub requested_surname: Option<String>,
    /// Rekey: the identity document copy that goes with the submission (the last one uploaded).
    pub requested_document_id: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &OrderRow) -> QueryResult<()> {
    diesel::insert_into(orders::table).values(row).execute(conn).map(|_| ())
}

pub fn by_id(conn: &mut DbConnection, id: &str) -> QueryResult<Option<OrderRow>> {
    orders::table.find(id).select(OrderRow::as_select()).first(conn).optional()
}

/// The order, only if it belongs to `user_id`.
pub fn owned_by(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<Option<OrderRow>> {
    orders::table
        .filter(orders::id.eq(id))
        .filter(orders::user_id.eq(user_id))
        .select(OrderRow::as_select())
        .first(conn)
        .optional()
}

pub fn by_payment_ref(conn: &mut DbConnection, payment_ref: &str) -> QueryResult<Option<OrderRow>> {
    orders::table.filter(orders::payment_ref.eq(payment_ref)).select(OrderRow::as_select()).first(conn).optional()
}

pub fn of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::user_id.eq(user_id))
        .order((orders::created_at.asc(), orders::id.asc()))
        .select(OrderRow::as_select())
        .load(conn)
}

pub fn list(conn: &mut DbConnection, status: Option<OrderStatus>, limit: i64) -> QueryResult<Vec<OrderRow>> {
    let mut query = orders::table.select(OrderRow::as_select()).into_boxed();
    if let Some(status) = status {
        query = query.filter(orders::status.eq(status));
    }
    query.order((orders::created_at.desc(), orders::id.asc())).limit(limit).load(conn)
}

/// Paid rekey orders (also those submitted and waiting for a decision) whose credential has expired
/// before they were fulfilled.
pub fn stranded_rekeys(conn: &mut DbConnection, now: i64) -> QueryResult<Vec<OrderRow>> {
    use super::schema::credentials;
    orders::table
        .inner_join(credentials::table.on(orders::credential_id.eq(credentials::id.nullable())))
        .filter(orders::purpose.eq(Purpose::Rekey))
        .filter(orders::status.eq_any([OrderStatus::Paid, OrderStatus::AwaitingDecision]))
        .filter(credentials::not_after.le(now))
        .select(OrderRow::as_select())
        .load(conn)
}

/// Writes the order back, only if it is still in `expected_status` (the status it was read in): false
/// when a concurrent request changed it meanwhile.
pub fn update_if(conn: &mut DbConnection, row: &OrderRow, expected_status: OrderStatus) -> QueryResult<bool> {
    let changed = diesel::update(orders::table.find(&row.id).filter(orders::status.eq(expected_status)))
        .set((
            orders::status.eq(row.status),
            orders::invoice.eq(&row.invoice),
            orders::invoice_number.eq(&row.invoice_number),
            orders::payment_ref.eq(&row.payment_ref),
            orders::new_credential_id.eq(&row.new_credential_id),
            orders::personal_data_confirmed.eq(row.personal_data_confirmed),
            orders::paid_at.eq(row.paid_at),
            orders::fulfilled_at.eq(row.fulfilled_at),
            orders::requested_given_name.eq(&row.requested_given_name),
            orders::requested_surname.eq(&row.requested_surname),
            orders::requested_document_id.eq(&row.requested_document_id),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Moves the order from one status to the next; false when it was no longer in `from` (a race lost).
pub fn transition(conn: &mut DbConnection, id: &str, from: OrderStatus, to: OrderStatus) -> QueryResult<bool> {
    let changed = diesel::update(orders::table.find(id).filter(orders::status.eq(from)))
        .set(orders::status.eq(to))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Records a webhook event; false when it was handled before (the redelivery must change nothing).
pub fn first_delivery(conn: &mut DbConnection, id: &str, subject_id: &str, now: i64) -> QueryResult<bool> {
    let seen: bool = diesel::select(diesel::dsl::exists(webhook_events::table.find(id))).get_result(conn)?;
    if seen {
        return Ok(false);
    }
    diesel::insert_into(webhook_events::table)
        .values((
            webhook_events::id.eq(id),
            webhook_events::subject_id.eq(subject_id),
            webhook_events::received_at.eq(now),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Forgets a webhook event whose handling was undone, so that its redelivery is handled again.
pub fn forget_delivery(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::delete(webhook_events::table.find(id)).execute(conn).map(|_| ())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = identity_checks)]
pub struct IdentityCheckRow {
    pub id: String,
    pub user_id: String,
    pub order_id: String,
    pub status: CheckStatus,
    pub reasons: Option<String>,
    pub decided_by: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    /// `identity` (video identification for an issuance or reissue) or `rekey` (a submitted rekey).
    pub kind: CheckKind,
    /// Rekey: the names, identity document and key type submitted, as the decision sees them.
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub document_id: Option<String>,
    pub key_type: Option<String>,
}

pub fn insert_check(conn: &mut DbConnection, row: &IdentityCheckRow) -> QueryResult<()> {
    diesel::insert_into(identity_checks::table).values(row).execute(conn).map(|_| ())
}

pub fn check(conn: &mut DbConnection, id: &str) -> QueryResult<Option<IdentityCheckRow>> {
    identity_checks::table.find(id).select(IdentityCheckRow::as_select()).first(conn).optional()
}

pub fn checks_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<IdentityCheckRow>> {
    identity_checks::table
        .filter(identity_checks::user_id.eq(user_id))
        .order((identity_checks::created_at.asc(), identity_checks::id.asc()))
        .select(IdentityCheckRow::as_select())
        .load(conn)
}

pub fn checks(conn: &mut DbConnection, status: Option<CheckStatus>, limit: i64) -> QueryResult<Vec<IdentityCheckRow>> {
    let mut query = identity_checks::table.select(IdentityCheckRow::as_select()).into_boxed();
    if let Some(status) = status {
        query = query.filter(identity_checks::status.eq(status));
    }
    query.order((identity_checks::created_at.asc(), identity_checks::id.asc())).limit(limit).load(conn)
}

pub fn order_identity_accepted(conn: &mut DbConnection, order_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        identity_checks::table
            .filter(identity_checks::order_id.eq(order_id))
            .filter(identity_checks::kind.eq(CheckKind::Identity))
            .filter(identity_checks::status.eq(CheckStatus::Accepted)),
    ))
    .get_result(conn)
}

/// Decides a pending check; false when it was already decided.
pub fn decide(
    conn: &mut DbConnection,
    id: &str,
    status: CheckStatus,
    reasons: Option<&str>,
    decided_by: &str,
    now: i64,
) -> QueryResult<bool> {
    let changed =
        diesel::update(identity_checks::table.find(id).filter(identity_checks::status.eq(CheckStatus::Pending)))
            .set((
                identity_checks::status.eq(status),
                identity_checks::reasons.eq(reasons),
                identity_checks::decided_by.eq(Some(decided_by)),
                identity_checks::decided_at.eq(Some(now)),
            ))
            .execute(conn)?;
    Ok(changed == 1)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = identity_documents)]
pub struct IdentityDocumentRow {
    pub id: String,
    pub user_id: String,
    pub order_id: String,
    pub content_type: String,
    pub data: Vec<u8>,
    pub sha256: String,
    pub uploaded_at: i64,
}

pub fn insert_document(conn: &mut DbConnection, row: &IdentityDocumentRow) -> QueryResult<()> {
    diesel::insert_into(identity_documents::table).values(row).execute(conn).map(|_| ())
}

/// Undoes an acceptance whose issuance failed, so the decision can be taken again; false when the
/// check was not accepted.
pub fn reopen_check(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    let changed =
        diesel::update(identity_checks::table.find(id).filter(identity_checks::status.eq(CheckStatus::Accepted)))
            .set((
                identity_checks::status.eq(CheckStatus::Pending),
                identity_checks::decided_by.eq(None::<String>),
                identity_checks::decided_at.eq(None::<i64>),
            ))
            .execute(conn)?;
    Ok(changed == 1)
}
