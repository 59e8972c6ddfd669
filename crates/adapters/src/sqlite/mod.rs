//! SQLite adapters (feature `sqlite`): the primary store's three ports in one
//! file ([`SqliteProviderStore`], [`SqliteAppointmentStore`] — which is also
//! the [`cita_core::events::Outbox`] — and [`SqliteIdempotencyStore`]), and
//! [`SqliteCountryStore`] in each country's own file. Embedded mode runs on
//! these with no services.
//!
//! # Design
//!
//! - **One pool per file**, opened by [`SqliteDatabase::connect`]: WAL
//!   journal (readers never block the writer nor each other), a busy timeout
//!   of [`BUSY_TIMEOUT`] so concurrent writers queue for the single write
//!   lock instead of failing with `SQLITE_BUSY`, foreign keys on, and the
//!   default `synchronous = FULL` so a committed booking survives a power
//!   loss. The embedded migrations (`migrations/sqlite`) run on connect; a
//!   country file gets the same schema and uses only its own table.
//! - **Writes that read first run in `BEGIN IMMEDIATE`**, which takes the
//!   write lock before the first read, so no other writer can commit between
//!   a check and the write it guards (see [`SqliteAppointmentStore`]).
//!   Single-statement writes carry their condition in the statement itself.
//! - **Instants are INTEGER unix milliseconds** (UTC), the precision Cita
//!   keeps everywhere (the service truncates `now` to the millisecond), so
//!   they compare and index as plain integers and round-trip exactly.
//! - **Ids are text**: caller ids as given, UUIDv7 ids in canonical
//!   hyphenated lower case, whose text order is their byte order, so
//!   `ORDER BY start_at, id` lists exactly as every other store does.
//! - **Structured values are JSON text** through private serde types (the
//!   schedule) or the domain's own serde form (event envelopes, idempotent
//!   outcomes). Statuses and the other column encodings live in one private
//!   module, `codec`.
//! - **Static SQL only**, run with `query`/`query_as` into private row
//!   structs: nothing needs a live database at build time.

mod appointments;
mod codec;
mod country;
mod idempotency;
mod providers;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

pub use appointments::SqliteAppointmentStore;
pub use country::SqliteCountryStore;
pub use idempotency::SqliteIdempotencyStore;
pub use providers::SqliteProviderStore;

/// How long a statement waits for another connection's lock before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per file. SQLite has one writer at a time whatever the pool
/// size; more connections only let reads run beside it.
const MAX_CONNECTIONS: u32 = 8;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// An open SQLite database file (a pool of connections to it), migrated.
/// Clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
}

impl SqliteDatabase {
    /// Opens the database at `path_or_url` — a file path, or a `sqlite:` URL
    /// such as `sqlite://data/cita.db?mode=rwc` — creating the file if it is
    /// missing, and brings its schema up to date.
    ///
    /// # Errors
    /// The URL does not parse, the file cannot be opened or created, or a
    /// migration fails.
    pub async fn connect(path_or_url: &str) -> anyhow::Result<Self> {
        let options = if path_or_url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path_or_url)
                .with_context(|| format!("invalid SQLite URL {path_or_url:?}"))?
        } else {
            SqliteConnectOptions::new().filename(path_or_url)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .with_context(|| format!("opening SQLite database {path_or_url:?}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("migrating SQLite database {path_or_url:?}"))?;
        Ok(Self { pool })
    }

    /// The connection pool, for stores and health checks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection once the ones in use are returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl SqliteDatabase {
    /// Answers when the file can be queried (`SELECT 1`), for readiness checks.
    ///
    /// # Errors
    /// The database cannot be reached or queried.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("SQLite did not answer SELECT 1")?;
        Ok(())
    }
}
