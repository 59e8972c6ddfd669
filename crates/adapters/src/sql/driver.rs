//! The seam between the shared store logic and sqlx: the few value types
//! Cita binds and reads, statements with their parameter order, and running
//! them on a connection, for any sqlx database that supports those types.
//!
//! [`Driver`] is implemented once, for every database the bounds of its
//! blanket implementation hold for (SQLite, PostgreSQL and MySQL all do), so
//! generic code names `D: Driver` and nothing else.

use std::future::Future;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, Row as _, Type};

use super::{Instant, Uuid};

/// A statement as prepared by sqlx for `DB`.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments>;

/// One bound value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'q> {
    Text(&'q str),
    OptText(Option<&'q str>),
    Int(i64),
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    Int32(i32),
    Instant(Instant),
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
}

/// A statement's text with the order its parameters are bound in.
///
/// Numbered markers (`?1` on SQLite, `$1` on PostgreSQL) name their
/// parameter; MySQL's `?` take the parameters in text order, so a MySQL
/// statement whose markers do not follow the parameters lists which
/// parameter (1-based) each marker is, repeats included.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub(crate) text: &'static str,
    order: Option<&'static [u8]>,
}

impl Sql {
    /// A statement that takes the parameters in the order given (numbered
    /// markers, or `?` in parameter order).
    pub(crate) const fn new(text: &'static str) -> Self {
        Self { text, order: None }
    }

    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    /// A statement whose `?` markers are the parameters `order` names.
    pub(crate) const fn ordered(text: &'static str, order: &'static [u8]) -> Self {
        Self {
            text,
            order: Some(order),
        }
    }

    /// The statement with `params` bound.
    pub(crate) fn bind<'q, D: Driver>(&self, params: &[Param<'q>]) -> Query<'q, D> {
        let query = sqlx::query(self.text);
        match self.order {
            None => params.iter().fold(query, |q, p| D::bind(q, *p)),
            Some(order) => order
                .iter()
                .fold(query, |q, i| D::bind(q, params[usize::from(*i) - 1])),
        }
    }
}

/// The number of rows a statement changed, for every dialect's result type.
pub(crate) trait RowsAffected {
    fn rows(&self) -> u64;
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "mysql")]
impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// What the shared stores need of a sqlx database: binding [`Param`]s,
/// running statements on a connection and reading columns by position.
pub(crate) trait Driver: Database {
    fn bind<'q>(query: Query<'q, Self>, param: Param<'q>) -> Query<'q, Self>;

    /// Runs `query`; the rows it changed.
    fn execute<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send + 'a;

    fn fetch_optional<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send + 'a;

    fn fetch_all<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Row>>> + Send + 'a;

    fn text(row: &Self::Row, i: usize) -> sqlx::Result<String>;
    fn opt_text(row: &Self::Row, i: usize) -> sqlx::Result<Option<String>>;
    fn int(row: &Self::Row, i: usize) -> sqlx::Result<i64>;
    fn int32(row: &Self::Row, i: usize) -> sqlx::Result<i32>;
    fn instant(row: &Self::Row, i: usize) -> sqlx::Result<Instant>;
    fn opt_instant(row: &Self::Row, i: usize) -> sqlx::Result<Option<Instant>>;
    fn uuid(row: &Self::Row, i: usize) -> sqlx::Result<Uuid>;
    fn opt_uuid(row: &Self::Row, i: usize) -> sqlx::Result<Option<Uuid>>;
}

impl<DB> Driver for DB
where
    DB: Database,
    DB::QueryResult: RowsAffected,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB>,
    for<'q> Instant: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> Instant: Decode<'r, DB>,
    for<'r> Option<Instant>: Decode<'r, DB>,
    for<'r> Uuid: Decode<'r, DB>,
    for<'r> Option<Uuid>: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn bind<'q>(query: Query<'q, Self>, param: Param<'q>) -> Query<'q, Self> {
        match param {
            Param::Text(v) => query.bind(v),
            Param::OptText(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
            Param::Int32(v) => query.bind(v),
            Param::Instant(v) => query.bind(v),
            Param::Uuid(v) => query.bind(v),
            Param::OptUuid(v) => query.bind(v),
        }
    }

    async fn execute<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> sqlx::Result<u64> {
        Ok(query.execute(conn).await?.rows())
    }

    fn fetch_optional<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> impl Future<Output = sqlx::Result<Option<Self::Row>>> + Send + 'a {
        query.fetch_optional(conn)
    }

    fn fetch_all<'a>(
        conn: &'a mut Self::Connection,
        query: Query<'a, Self>,
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Row>>> + Send + 'a {
        query.fetch_all(conn)
    }

    fn text(row: &Self::Row, i: usize) -> sqlx::Result<String> {
        row.try_get(i)
    }
    fn opt_text(row: &Self::Row, i: usize) -> sqlx::Result<Option<String>> {
        row.try_get(i)
    }
    fn int(row: &Self::Row, i: usize) -> sqlx::Result<i64> {
        row.try_get(i)
    }
    fn int32(row: &Self::Row, i: usize) -> sqlx::Result<i32> {
        row.try_get(i)
    }
    fn instant(row: &Self::Row, i: usize) -> sqlx::Result<Instant> {
        row.try_get(i)
    }
    fn opt_instant(row: &Self::Row, i: usize) -> sqlx::Result<Option<Instant>> {
        row.try_get(i)
    }
    fn uuid(row: &Self::Row, i: usize) -> sqlx::Result<Uuid> {
        row.try_get(i)
    }
    fn opt_uuid(row: &Self::Row, i: usize) -> sqlx::Result<Option<Uuid>> {
        row.try_get(i)
    }
}

/// A row decoded by column position, through [`Driver`] alone.
pub(crate) trait FromSql: Sized {
    fn from_sql<D: Driver>(row: &D::Row) -> sqlx::Result<Self>;
}
