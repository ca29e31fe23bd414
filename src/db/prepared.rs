//! Statements whose SQL never changes, so that each connection prepares them once and keeps them: the
//! writes every signature and every authorisation make (in `sads`, `credentials`, `audit` and
//! `authenticators`).
//!
//! diesel prepares every `UPDATE` anew (a changeset's SQL may differ from one call to the next), and an
//! `INSERT` with optional values too; through `MultiConnection` it also builds the SQL text twice per
//! call. On the signing path that was about a tenth of the CPU time (SQLite's parser and planner, run
//! for the same few statements on every request). A [`Fixed`] statement is written out once, with bind
//! parameters, under a query id of its own: diesel's statement cache keeps it prepared, on both backends.

use std::marker::PhantomData;

use diesel::connection::Connection;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::QueryResult;

use super::connection::MultiBackend;
use super::DbConnection;

/// One piece of a fixed statement: SQL text, or a value bound to a parameter.
pub(super) enum Part<'a> {
    Sql(&'static str),
    Int(i32),
    Long(i64),
    Text(&'a str),
    OptionalText(Option<&'a str>),
}

/// A statement made of `parts`. `Id` names it in the statement cache: every statement built with one
/// `Id` must have the same SQL pieces in the same order (only the bound values differ), which each caller
/// of [`execute`] guarantees by building its parts in one place with a marker type of its own.
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

/// Runs the statement made of `parts`, kept prepared under `Id`; the number of rows it changed.
pub(super) fn execute<Id: 'static>(conn: &mut DbConnection, parts: Vec<Part<'_>>) -> QueryResult<usize> {
    conn.execute_returning_count(&Fixed::<Id> { parts, id: PhantomData })
}
