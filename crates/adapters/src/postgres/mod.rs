//! PostgreSQL adapters (feature `postgres`): the primary store's ports
//! ([`PostgresProviderStore`], [`PostgresAppointmentStore`] — which is also
//! the [`cita_core::events::Outbox`] — and [`PostgresIdempotencyStore`]) and
//! [`PostgresCountryStore`] for a country's own database. Same port
//! semantics as the SQLite and in-memory adapters; the contract suites in
//! `cita-tests` run unchanged against all of them.
//!
//! # Design, and why it is correct
//!
//! - **The database refuses overlaps itself.** Two exclusion constraints
//!   (`migrations/postgres/0002_appointments.sql`, predicates changed by
//!   `0005_holds_time.sql`) forbid two active rows of
//!   one provider whose `[start_at, hold_until)` ranges meet (`hold_until` =
//!   end + buffer) and two active rows of one patient whose
//!   `[start_at, end_at)` ranges meet. PostgreSQL enforces them on every
//!   insert and update whatever the isolation level, and waits for an
//!   uncommitted conflicting row to commit or roll back before deciding, so
//!   no interleaving of writers — in this process or any other — can commit
//!   an overlap. The adapter maps SQLSTATE 23P01 to `SlotTaken` or
//!   `PatientBusy` by constraint name. Half-open ranges let adjacent holds
//!   pass; `WHERE holds_time` (a stored column, `status <> 'cancelled'`)
//!   makes a cancelled row hold nothing; an update is never compared with
//!   its own old row version, and one that changes neither times, owners
//!   nor `holds_time` (a confirmation) is written in place, without new
//!   index entries, so it needs no check.
//! - **Concurrent bookings share a transaction** (group commit): inserts of
//!   active appointments queue, and one call of `cita_insert_appointments`
//!   (`0006_insert_batch.sql`) writes a whole batch, each row in a
//!   subtransaction of its own so that a refused row undoes only itself,
//!   and answers for each row. Its comment says why its answers are exact;
//!   the shared group commit (the `sql` module's) how batches are formed
//!   and what a failed call means for its rows, the private `group_commit`
//!   module this dialect's limits. The call also applies the provider's
//!   current buffer after existing appointments (the rule availability
//!   shows), so the booking service skips its own read before inserting.
//! - **Provider before patient.** PostgreSQL checks a row's indexes in OID
//!   order and the provider's constraint is created first, so a row that
//!   clashes on both is reported as `SlotTaken`. OID order is an
//!   implementation detail, so a `PatientBusy` is confirmed by one query for
//!   an overlapping active appointment of the provider before it is returned.
//! - **Writers that could clash queue instead of deadlocking.** PostgreSQL
//!   checks an exclusion constraint *after* inserting the index entry; two
//!   transactions inserting clashing rows at the same instant can each find
//!   the other's entry and wait for each other, and the deadlock detector then
//!   aborts one after `deadlock_timeout` (1 s by default) with 40P01 instead
//!   of 23P01. So each write of an active appointment first takes two
//!   transaction-scoped advisory locks, its provider's and then its
//!   patient's: two writes that can clash share at least one of them, so they
//!   run one after the other and the second sees the first committed. The
//!   locks are only about speed and clean answers: correctness rests on the
//!   constraints alone. Taking them in one fixed order (provider class
//!   first) cannot deadlock; two ids whose hashes collide merely queue. A
//!   transaction that still fails with 40P01 or 40001 (a writer not using
//!   these locks) rolled back entirely and is run again, a few times.
//! - **Event and change commit together.** The appointment row and its
//!   outbox row are written in one transaction; any error before `COMMIT`
//!   drops the transaction, which rolls back, so nothing is half-written.
//! - **Versions are checked in the write**: `UPDATE … WHERE id = $1 AND
//!   version = $2`. Under READ COMMITTED a concurrent update that committed
//!   first makes PostgreSQL re-check the `WHERE` against the new row, so
//!   exactly one of two writers expecting the same version updates; 0 rows
//!   means `VersionConflict` (or no such appointment).
//! - **Instants are `timestamptz`**, converted at the boundary by the private
//!   `codec` (sqlx 0.9 has no jiff support): written floored to the
//!   millisecond like every Cita store, read back exactly.
//! - **Appointment and event ids are `uuid`**, whose byte order is the
//!   canonical text order of UUIDv7, so `ORDER BY start_at, id` lists
//!   exactly as the in-memory store does.
//! - **The outbox is ordered by a `bigserial`.** A sequence value is taken
//!   at insert, before commit, so across appointments an entry may become
//!   visible after a later-numbered one (delivery is at least once and may
//!   be out of order across appointments). Within one appointment the order
//!   is exact: its next change cannot start before the previous one commits
//!   (the row lock and the version check), so its events are numbered in
//!   version order.
//! - **Structured values are `jsonb`** (schedule, event envelopes,
//!   idempotent outcomes), bound as text with a `::jsonb` cast and read back
//!   as text, through private serde types or the domain's serde form.
//! - **Static SQL only**, run with `query`/`query_as`: nothing needs a live
//!   database at build time.
//!
//! PostgreSQL `text` and `jsonb` cannot hold U+0000; a write containing it
//! (in notes, say) fails as `Unexpected` and writes nothing.
//!
//! The role that runs the migrations needs `CREATE` on the database (the
//! first migration creates the trusted `btree_gist` extension), or an
//! administrator creates the extension beforehand.

mod appointments;
mod codec;
mod dialect;
mod group_commit;
mod provider_cache;
mod providers;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use appointments::PostgresAppointmentStore;
/// Idempotency records in PostgreSQL (the shared
/// [`SqlIdempotencyStore`](crate::sql::SqlIdempotencyStore)).
pub type PostgresIdempotencyStore = crate::sql::SqlIdempotencyStore<PostgresDatabase>;
/// One country's appointment records in its own PostgreSQL database (the
/// shared [`SqlCountryStore`](crate::sql::SqlCountryStore)).
pub type PostgresCountryStore = crate::sql::SqlCountryStore<PostgresDatabase>;
pub use providers::PostgresProviderStore;

/// The sqlx this adapter is built with. [`PostgresDatabase::pool`] hands
/// out its pool; running your own SQL on it (maintenance, tests) needs the
/// same version of sqlx, so it is re-exported here.
pub use sqlx;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How the connection pool behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// The most connections the pool opens at once.
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for every connection, or `None` for
    /// the server's setting. Waiting for a lock counts toward it.
    pub statement_timeout: Option<Duration>,
}

impl Default for PoolSettings {
    /// 10 connections, none kept idle, 5 s to get one, the server's
    /// statement timeout.
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: None,
        }
    }
}

/// A connection pool to one PostgreSQL database, migrated. Clones share the
/// pool.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    pool: PgPool,
}

impl PostgresDatabase {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`,
    /// any option libpq's URLs take that sqlx understands) and brings the
    /// schema up to date.
    ///
    /// # Errors
    /// The URL does not parse, the server cannot be reached or refuses the
    /// login, or a migration fails.
    pub async fn connect(url: &str, settings: PoolSettings) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
        Self::connect_with(options, settings).await
    }

    /// Connects with options built in code (another database of the same
    /// server, say) and brings the schema up to date. Concurrent callers
    /// are safe: the migrator holds an advisory lock while it runs.
    ///
    /// # Errors
    /// As for [`PostgresDatabase::connect`].
    pub async fn connect_with(
        options: PgConnectOptions,
        settings: PoolSettings,
    ) -> anyhow::Result<Self> {
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default)")
        );
        let options = match settings.statement_timeout {
            Some(t) => options.options([("statement_timeout", format!("{}", t.as_millis()))]),
            None => options,
        };
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {target}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating PostgreSQL database {target}"))?;
        Ok(Self { pool })
    }

    /// The connection pool, for stores and health checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Answers when the server can be queried (`SELECT 1`), for readiness checks.
    ///
    /// # Errors
    /// The server cannot be reached or queried.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("PostgreSQL did not answer SELECT 1")?;
        Ok(())
    }

    /// Closes every connection once the ones in use are returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// How many times a write runs when PostgreSQL aborts it as a deadlock
/// victim or a serialisation failure (see the module documentation).
const WRITE_ATTEMPTS: u32 = 3;
