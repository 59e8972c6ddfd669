//! MySQL / MariaDB adapters (feature `mysql`): the primary store's three
//! ports ([`MySqlProviderStore`], [`MySqlAppointmentStore`] — which is also
//! the [`cita_core::events::Outbox`] — and [`MySqlIdempotencyStore`]), and
//! [`MySqlCountryStore`] for each country's own database (seed 000's
//! per-country RDS: `cita_pe`, `cita_cl`, …). Every database, primary or
//! country, gets the same schema from the embedded migrations
//! (`migrations/mysql`); a country database uses only its own table.
//!
//! Needs MySQL 8.0.16+ or MariaDB 10.6+ (CHECK constraints, `JSON_TABLE`,
//! indexed virtual columns) with InnoDB, and a binary log format of `ROW` or
//! `MIXED` if binary logging is on (READ COMMITTED refuses `STATEMENT`).
//!
//! # Design
//!
//! - **No exclusion constraints, so bookings take turns per owner.** MySQL
//!   cannot refuse overlapping ranges by itself. Every write that must check
//!   overlaps first locks one row per provider and one per patient in
//!   `booking_locks` (`SELECT … FOR UPDATE`, provider then patient), then
//!   runs the overlap queries, then writes the appointment and its outbox
//!   row, then commits. [`MySqlAppointmentStore`] explains why this is
//!   correct under concurrency for ranges of any lengths, and why it cannot
//!   deadlock.
//! - **READ COMMITTED on every connection** (set once per connection by
//!   [`MySqlDatabase::connect`]). Under InnoDB's default REPEATABLE READ a
//!   transaction's plain `SELECT`s read one snapshot, taken at its first
//!   plain read; READ COMMITTED gives every statement a fresh snapshot, so
//!   an overlap check that runs after the lock is taken sees every booking
//!   committed before it — whatever ran earlier in the transaction. READ
//!   COMMITTED also takes no gap locks, so a `SELECT … FOR UPDATE` of a key
//!   that does not exist yet does not block, and deadlock with, another
//!   transaction's insert of a neighbouring key.
//! - **Transient failures retry the whole transaction.** A deadlock victim
//!   (error 1213), a lock wait that timed out (1205), and the loser of a race
//!   to create the same row are retried from the start, a few times with a
//!   jittered backoff; nothing of a failed attempt survives its rollback. The
//!   lock wait is bounded by [`MySqlPoolSettings::lock_wait_timeout`].
//! - **Instants are BIGINT unix milliseconds** (UTC), the precision Cita
//!   keeps everywhere (the service truncates `now` to the millisecond): they
//!   round-trip exactly over jiff's whole range, compare and index as plain
//!   integers, and mean the same whatever the session's `time_zone` (a
//!   `DATETIME(3)` would need one fixed, and a driver feature to decode).
//!   Read them by hand with `FROM_UNIXTIME(start_at / 1000)`.
//! - **Ids are ASCII with a binary collation** (`ascii_bin`): caller ids as
//!   given and case-sensitive, UUIDv7 ids in canonical hyphenated lower case,
//!   whose text order is their byte order, so `ORDER BY start_at, id` lists
//!   exactly as every other store does. Free text (names, notes, reasons) is
//!   `utf8mb4`.
//! - **Structured values are JSON text** (`MEDIUMTEXT` with a `JSON_VALID`
//!   check, so MySQL's binary JSON never reformats them) through private
//!   serde types (the schedule) or the domain's own serde form (event
//!   envelopes, idempotent outcomes). Statuses and the other column encodings
//!   live in one private module, `codec`.
//! - **Rows matched, not rows changed.** sqlx connects with
//!   `CLIENT_FOUND_ROWS`, so an `UPDATE` whose `WHERE` matches a row reports
//!   it even when every value is unchanged: a versioned write of identical
//!   content is not mistaken for a conflict.
//! - **Static SQL only**, run with `query`/`query_as` into private row
//!   structs: nothing needs a live database at build time.

mod appointments;
mod codec;
mod dialect;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::Executor as _;
use sqlx::MySqlPool;
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions};

pub use appointments::MySqlAppointmentStore;
/// Providers in a MySQL database (the shared
/// [`SqlProviderStore`](crate::sql::SqlProviderStore)).
pub type MySqlProviderStore = crate::sql::SqlProviderStore<MySqlDatabase>;
/// Idempotency records in a MySQL database (the shared
/// [`SqlIdempotencyStore`](crate::sql::SqlIdempotencyStore)).
pub type MySqlIdempotencyStore = crate::sql::SqlIdempotencyStore<MySqlDatabase>;
/// One country's appointment records in its own MySQL database (seed
/// 000's per-country RDS: `cita_pe`, `cita_cl`, …; the shared
/// [`SqlCountryStore`](crate::sql::SqlCountryStore)).
pub type MySqlCountryStore = crate::sql::SqlCountryStore<MySqlDatabase>;

/// The driver this adapter is built on, re-exported so that code holding
/// [`MySqlDatabase::pool`] (operations tooling, tests) can run statements of
/// its own with the very same sqlx version.
pub use sqlx;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

/// How a [`MySqlDatabase`] pools its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlPoolSettings {
    /// Connections open at most. A booking holds one for the length of its
    /// transaction, including while it waits its turn for a lock row.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// How long a statement waits for a row lock before failing with
    /// error 1205 (InnoDB's `innodb_lock_wait_timeout`, whole seconds, at
    /// least one). The transaction is then retried; keep it short enough
    /// that a stuck writer does not hold every booking of a provider hostage
    /// for long.
    pub lock_wait_timeout: Duration,
}

impl Default for MySqlPoolSettings {
    /// 10 connections, none kept idle, 10 s to get one, 5 s lock waits.
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            lock_wait_timeout: Duration::from_secs(5),
        }
    }
}

/// A migrated MySQL / MariaDB database (a pool of connections to it).
/// Clones share the pool.
#[derive(Debug, Clone)]
pub struct MySqlDatabase {
    pool: MySqlPool,
}

impl MySqlDatabase {
    /// Connects to the database named in `url` — such as
    /// `mysql://cita:secret@db.internal:3306/cita_pe` — and brings its schema
    /// up to date. The database must exist.
    ///
    /// # Errors
    /// The URL does not parse, the server cannot be reached or refuses the
    /// credentials, or a migration fails. Messages never include the password.
    pub async fn connect(url: &str, settings: &MySqlPoolSettings) -> anyhow::Result<Self> {
        // The parse error of a URL could quote it, password included.
        let options = MySqlConnectOptions::from_str(url).map_err(|_| {
            anyhow::anyhow!("invalid MySQL URL (not shown: it may hold a password)")
        })?;
        Self::connect_with(options, settings).await
    }

    /// [`MySqlDatabase::connect`] with options built in code, e.g.
    /// `MySqlConnectOptions::from_str(server)?.database("cita_cl")`.
    ///
    /// # Errors
    /// As for [`MySqlDatabase::connect`].
    pub async fn connect_with(
        options: MySqlConnectOptions,
        settings: &MySqlPoolSettings,
    ) -> anyhow::Result<Self> {
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let lock_wait = settings.lock_wait_timeout.as_secs().max(1);
        let pool = MySqlPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // See the module documentation: every store relies on it.
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    // A value that does not fit its column is an error, never
                    // silently truncated, whatever the server's default mode.
                    conn.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")
                        .await?;
                    sqlx::query("SET SESSION innodb_lock_wait_timeout = ?")
                        .bind(lock_wait)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to MySQL at {target}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating MySQL database {target}"))?;
        Ok(Self { pool })
    }

    /// The connection pool, for stores, health checks and tooling.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Answers when the database can be queried (`SELECT 1`), for readiness checks.
    ///
    /// # Errors
    /// The database cannot be reached or queried.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("MySQL did not answer SELECT 1")?;
        Ok(())
    }

    /// Closes every connection once the ones in use are returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// MySQL's error number, if `e` is a database error.
pub(super) fn error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::dialect::{ATTEMPTS, Contended, retrying};

    fn transient_reason(e: &anyhow::Error) -> Option<&'static str> {
        crate::sql::dialect::transient_reason::<MySqlDatabase>(e)
    }

    #[test]
    fn contended_is_transient_through_context() {
        let e = anyhow::Error::new(Contended).context("recording a snapshot");
        assert_eq!(transient_reason(&e), Some("contended"));
        let other = anyhow::anyhow!("something else").context("recording a snapshot");
        assert_eq!(transient_reason(&other), None);
    }

    #[tokio::test]
    async fn retrying_stops_at_a_permanent_error_and_after_the_last_attempt() {
        let mut calls = 0;
        let r: anyhow::Result<()> = retrying::<MySqlDatabase, _, _, _, _>("test", || {
            calls += 1;
            async { Err(anyhow::anyhow!("permanent")) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "a permanent error is not retried");

        let mut calls = 0;
        let r: anyhow::Result<()> = retrying::<MySqlDatabase, _, _, _, _>("test", || {
            calls += 1;
            async { Err(anyhow::Error::new(Contended)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls, ATTEMPTS,
            "a transient error is retried up to the limit"
        );

        let mut calls = 0;
        let r: anyhow::Result<u32> = retrying::<MySqlDatabase, _, _, _, _>("test", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(anyhow::Error::new(Contended))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3, "a later attempt's success is the answer");
    }
}
