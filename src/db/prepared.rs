//! The writes every signature and every authorisation make, as statements whose SQL never changes, so
//! that each connection prepares them once and keeps them.
//!
//! diesel prepares every `UPDATE` anew (a changeset's SQL may differ from one call to the next), and an
//! `INSERT` with optional values too; through `MultiConnection` it also builds the SQL text twice per
//! call. On the signing path that was about a tenth of the CPU time (SQLite's parser and planner, run
//! for the same few statements on every request). A [`Fixed`] statement is written out once, with bind
//! parameters, under a query id of its own: diesel's statement cache keeps it prepared, on both backends.
//! Each function here has the same meaning as the diesel query it replaces in its module.

use std::marker::PhantomData;

use diesel::connection::Connection;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::QueryResult;

use super::connection::MultiBackend;
use super::DbConnection;

/// One piece of a fixed statement: SQL text, or a value bound to a parameter.
enum Part<'a> {
    Sql(&'static str),
    Int(i32),
    Long(i64),
    Text(&'a str),
    OptionalText(Option<&'a str>),
}

/// A statement made of `parts`. `Id` names it in the statement cache: every statement built with one
/// `Id` must have the same SQL pieces in the same order (only the bound values differ), which each
/// function below guarantees by building its parts in one place with a marker type of its own.
struct Fixed<'a, Id> {
    parts: Vec<Part<'a>>,
    id: PhantomData<Id>,
}

impl<Id> QueryFragment<MultiBackend> for Fixed<'_, Id> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        for part in &self.parts {
            match part {
                Part::Sql(sql) => out.push_sql(sql),
                Part::Int(value) => out.push_bind_param::<Integer, i32>(value)?,
                Part::Long(value) => out.push_bind_param::<BigInt, i64>(value)?,
                Part::Text(value) => out.push_bind_param::<Text, &str>(value)?,
                Part::OptionalText(value) => out.push_bind_param::<Nullable<Text>, Option<&str>>(value)?,
            }
        }
        Ok(())
    }
}

impl<Id: 'static> QueryId for Fixed<'_, Id> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// Runs the statement; the number of rows it changed.
fn execute<Id: 'static>(conn: &mut DbConnection, parts: Vec<Part<'_>>) -> QueryResult<usize> {
    conn.execute_returning_count(&Fixed::<Id> { parts, id: PhantomData })
}

/// See [`super::sads::spend`].
pub(super) fn spend_sad(
    conn: &mut DbConnection,
    digest: &str,
    n: i32,
    before: &str,
    remaining: &str,
    now: i64,
) -> QueryResult<usize> {
    struct SpendSad;
    use Part::*;
    execute::<SpendSad>(
        conn,
        vec![
            Sql("UPDATE sads SET used = used + "),
            Int(n),
            Sql(", hashes = "),
            Text(remaining),
            Sql(" WHERE digest = "),
            Text(digest),
            Sql(" AND revoked = FALSE AND expires_at > "),
            Long(now),
            Sql(" AND hashes = "),
            Text(before),
            Sql(" AND used + "),
            Int(n),
            Sql(" <= num_signatures"),
        ],
    )
}

/// See [`super::credentials::spend_quota`].
pub(super) fn spend_quota(conn: &mut DbConnection, id: &str, count: i32) -> QueryResult<usize> {
    struct SpendQuota;
    use Part::*;
    execute::<SpendQuota>(
        conn,
        vec![
            Sql("UPDATE credentials SET quota_used = quota_used + "),
            Int(count),
            Sql(" WHERE id = "),
            Text(id),
            Sql(" AND (quota_total IS NULL OR quota_used + "),
            Int(count),
            Sql(" <= quota_total)"),
        ],
    )
}

/// See [`super::audit::append`]: the record, then the head moved to it.
pub(super) fn append_audit(conn: &mut DbConnection, row: &super::audit::AuditRow) -> QueryResult<()> {
    struct InsertAuditRecord;
    struct MoveAuditHead;
    use Part::*;
    execute::<InsertAuditRecord>(
        conn,
        vec![
            Sql("INSERT INTO audit_log (seq, at, event, outcome, user_id, credential_id, detail, prev_hash, hash, \
                 request_id) VALUES ("),
            Long(row.seq),
            Sql(", "),
            Long(row.at),
            Sql(", "),
            Text(&row.event),
            Sql(", "),
            Text(&row.outcome),
            Sql(", "),
            OptionalText(row.user_id.as_deref()),
            Sql(", "),
            OptionalText(row.credential_id.as_deref()),
            Sql(", "),
            Text(&row.detail),
            Sql(", "),
            Text(&row.prev_hash),
            Sql(", "),
            Text(&row.hash),
            Sql(", "),
            OptionalText(row.request_id.as_deref()),
            Sql(")"),
        ],
    )?;
    execute::<MoveAuditHead>(
        conn,
        vec![
            Sql("UPDATE audit_head SET seq = "),
            Long(row.seq),
            Sql(", hash = "),
            Text(&row.hash),
            Sql(" WHERE id = 1"),
        ],
    )?;
    Ok(())
}

/// See [`super::authenticators::accept_totp_step`].
pub(super) fn accept_totp_step(conn: &mut DbConnection, user_id: &str, step: i64) -> QueryResult<usize> {
    struct AcceptTotpStep;
    use Part::*;
    execute::<AcceptTotpStep>(
        conn,
        vec![
            Sql("UPDATE totp_factors SET last_step = "),
            Long(step),
            Sql(", failures = 0, locked_until = NULL WHERE user_id = "),
            Text(user_id),
            Sql(" AND (last_step IS NULL OR last_step < "),
            Long(step),
            Sql(")"),
        ],
    )
}
