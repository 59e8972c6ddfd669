//! SQLite adapters (feature `sqlite`): the primary store's three ports in one
//! file ([`SqliteProviderStore`], [`SqliteAppointmentStore`] — which is also
//! the [`cita_core::events::Outbox`] — and [`SqliteIdempotencyStore`]), and
//! [`SqliteCountryStore`] in each country's own file. Embedded mode runs on
//! these with no services.
//!
//! # Design
//!
//! - **One [`SqliteDatabase`] per file**, opened by
//!   [`SqliteDatabase::connect`] (or [`SqliteDatabase::connect_with`]): one
//!   write connection and a few read connections rather than a sqlx pool
//!   (the type's documentation says why). WAL journal (readers never block
//!   the writer nor each other), foreign keys on, and `PRAGMA synchronous`
//!   as [`SqliteOptions::synchronous`] says — `FULL` unless asked otherwise,
//!   so a committed booking survives a power loss. The embedded migrations
//!   (`migrations/sqlite`) run on connect; a country file gets the same
//!   schema and uses only its own table.
//! - **One writer at a time, queued in-process.** SQLite has a single write
//!   lock per file; a connection that finds it taken waits in SQLite's busy
//!   handler, which sleeps in growing steps (1, 2, 5, 10 … 100 ms) and so
//!   turns contention into long tail latencies. Every write of these stores
//!   goes through its database's write gate (a fair async mutex around the
//!   write connection), so this process's writers queue in order and never
//!   meet each other in SQLite. The busy timeout ([`BUSY_TIMEOUT`]) stays
//!   for writers outside the gate: another `SqliteDatabase` or another
//!   process on the same file.
//! - **Writes that read first run in `BEGIN IMMEDIATE`**, which takes the
//!   write lock before the first read, so no other writer — in this process
//!   or another one — can commit between a check and the write it guards
//!   (see [`SqliteAppointmentStore`]). Single-statement writes carry their
//!   condition in the statement itself. The gate only orders writers; these
//!   transactions are what make the checks correct.
//! - **Common writes are one round trip.** A booking, a confirmation, a
//!   country record or a new idempotency key is first tried as one batch of
//!   statements that carries its checks in its `WHERE` clauses and says
//!   whether it wrote; only when it did not (refused, or failed and rolled
//!   back) does the step-by-step transaction run to find out why.
//!   Concurrent bookings share one batch (the shared group commit of the
//!   `sql` module, over the batch write of `group_commit`), and a booking's
//!   batch also says which rule refused it, so only a failed batch sends
//!   its bookings to the step-by-step transaction.
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
//!   structs: nothing needs a live database at build time. Each connection
//!   keeps its prepared statements (sqlx's statement cache), so a statement
//!   is compiled once per connection, not once per call.

mod appointments;
mod codec;
mod dialect;
mod group_commit;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore, SemaphorePermit};

pub use appointments::SqliteAppointmentStore;

/// Providers in a SQLite file (the shared [`SqlProviderStore`](crate::sql::SqlProviderStore)).
pub type SqliteProviderStore = crate::sql::SqlProviderStore<SqliteDatabase>;
/// Idempotency records in a SQLite file (the shared
/// [`SqlIdempotencyStore`](crate::sql::SqlIdempotencyStore)).
pub type SqliteIdempotencyStore = crate::sql::SqlIdempotencyStore<SqliteDatabase>;
/// One country's appointment records in its own SQLite file (the shared
/// [`SqlCountryStore`](crate::sql::SqlCountryStore)).
pub type SqliteCountryStore = crate::sql::SqlCountryStore<SqliteDatabase>;

/// How long a statement waits for a lock held outside this database's
/// write gate (another [`SqliteDatabase`] or process on the same file)
/// before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows a read connection's thread may run ahead of the task reading them
/// (sqlx's default is 50): a range read of a busy calendar then streams
/// without the thread stopping to wait for the reader.
const ROW_BUFFER: usize = 512;

/// How SQLite makes a commit durable (`PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// The WAL is synced to disk at every commit: a committed write survives
    /// an application crash, an OS crash and a power loss. Each commit waits
    /// for one `fsync`, and writers take turns, so the disk's sync latency
    /// bounds the commits per second.
    #[default]
    Full,
    /// The WAL is synced only at checkpoints (SQLite's recommendation for
    /// WAL mode): a commit survives a crash of the application, but an OS
    /// crash or power loss may lose the last commits before a checkpoint.
    /// The file is never corrupted, and a lost commit is lost whole (an
    /// appointment with its outbox row).
    Normal,
}

/// How a database file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Commit durability; [`Synchronous::Full`] by default.
    pub synchronous: Synchronous,
    /// Connections for reads outside write transactions (default 4, at
    /// least 1), opened when first needed. In WAL mode reads never wait for
    /// the writer nor for each other; each connection is a thread, so more
    /// than the cores available buys little.
    pub read_connections: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            read_connections: 4,
        }
    }
}

/// An open SQLite database file, migrated: one write connection and a few
/// read connections. Clones share them.
///
/// # Why not a `sqlx::SqlitePool`
///
/// Every sqlx SQLite connection runs on its own thread, so every statement
/// is a hop to that thread and back. A pool checkout adds hops of its own:
/// a ping when a connection is taken (unless disabled) and another, which
/// cannot be disabled, when it is returned. Profiles of the HTTP benchmark
/// showed these context switches as most of the CPU a request cost. Here a
/// statement costs exactly its own round trip:
///
/// - **Writes** use the single write connection behind an async mutex: the
///   write gate. SQLite has one writer per file anyway; queueing writers
///   here, in order, keeps them out of SQLite's busy handler, which sleeps
///   in growing steps (1, 2, 5, 10 … 100 ms) and turns contention into long
///   tail latencies. The busy timeout ([`BUSY_TIMEOUT`]) stays for writers
///   outside this gate: another `SqliteDatabase` or process on the file.
/// - **Reads** take an idle read connection (opened with
///   `PRAGMA query_only`), at most [`SqliteOptions::read_connections`] at a
///   time, and put it back when dropped.
///
/// A future dropped in the middle of a statement leaves the statement to
/// finish on the connection's thread; the next statement sent to that
/// connection runs after it, so handing the connection on at once is safe.
/// A write transaction dropped before it ends is rolled back before the
/// write gate passes to the next writer.
#[derive(Clone)]
pub struct SqliteDatabase {
    shared: Arc<Shared>,
}

struct Shared {
    /// What was opened, for messages.
    name: String,
    /// The write gate and the write connection; `None` once closed.
    writer: Arc<Mutex<Option<SqliteConnection>>>,
    /// How read connections are opened.
    read_options: SqliteConnectOptions,
    /// Read connections not in use.
    idle_readers: std::sync::Mutex<Vec<SqliteConnection>>,
    /// One permit per read connection that may exist.
    reader_permits: Semaphore,
    closed: AtomicBool,
}

impl fmt::Debug for SqliteDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteDatabase")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl SqliteDatabase {
    /// Opens the database at `path_or_url` with the default
    /// [`SqliteOptions`] (`synchronous = FULL`); see [`Self::connect_with`].
    ///
    /// # Errors
    /// As [`Self::connect_with`].
    pub async fn connect(path_or_url: &str) -> anyhow::Result<Self> {
        Self::connect_with(path_or_url, SqliteOptions::default()).await
    }

    /// Opens the database at `path_or_url` — a file path, or a `sqlite:` URL
    /// such as `sqlite://data/cita.db?mode=rwc` — creating the file if it is
    /// missing, and brings its schema up to date.
    ///
    /// # Errors
    /// The URL does not parse, the file cannot be opened or created, or a
    /// migration fails.
    pub async fn connect_with(path_or_url: &str, options: SqliteOptions) -> anyhow::Result<Self> {
        let base = if path_or_url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path_or_url)
                .with_context(|| format!("invalid SQLite URL {path_or_url:?}"))?
        } else {
            SqliteConnectOptions::new().filename(path_or_url)
        };
        let base = base
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .synchronous(match options.synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            });
        let mut writer = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .with_context(|| format!("opening SQLite database {path_or_url:?}"))?;
        MIGRATOR
            .run(&mut writer)
            .await
            .with_context(|| format!("migrating SQLite database {path_or_url:?}"))?;
        let readers = options.read_connections.max(1);
        Ok(Self {
            shared: Arc::new(Shared {
                name: path_or_url.to_owned(),
                writer: Arc::new(Mutex::new(Some(writer))),
                // The journal mode is the writer's to set (it persists in
                // the file); a reader only ever reads.
                read_options: base.pragma("query_only", "ON").row_buffer_size(ROW_BUFFER),
                idle_readers: std::sync::Mutex::new(Vec::with_capacity(readers)),
                reader_permits: Semaphore::new(readers),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Closes the connections: the idle ones now, the ones in use when they
    /// are given back. Later calls fail.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let idle = std::mem::take(&mut *self.shared.lock_idle());
        for conn in idle {
            let _ = conn.close().await;
        }
        if let Some(writer) = self.shared.writer.lock().await.take() {
            let _ = writer.close().await;
        }
    }

    /// Answers when the file can be queried (`SELECT 1`), for readiness checks.
    ///
    /// # Errors
    /// The database cannot be reached or queried.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.read().await?;
        sqlx::query("SELECT 1")
            .execute(conn.conn())
            .await
            .context("SQLite did not answer SELECT 1")?;
        Ok(())
    }

    /// A read connection, waiting while all are in use.
    pub(crate) async fn read(&self) -> anyhow::Result<ReadConnection<'_>> {
        let shared = &*self.shared;
        let permit = shared
            .reader_permits
            .acquire()
            .await
            .context("the database is closed")?;
        anyhow::ensure!(
            !shared.closed.load(Ordering::SeqCst),
            "the database {} is closed",
            shared.name
        );
        let idle = shared.lock_idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            // Fewer connections exist than permits: open one more.
            None => shared
                .read_options
                .connect()
                .await
                .with_context(|| format!("opening a read connection to {}", shared.name))?,
        };
        Ok(ReadConnection {
            shared,
            conn: Some(conn),
            _permit: permit,
        })
    }

    /// Waits for this database's turn to write (the write gate) and holds
    /// it, with the write connection, until the turn is dropped.
    pub(crate) async fn write_turn(&self) -> anyhow::Result<WriteTurn> {
        let guard = Arc::clone(&self.shared.writer).lock_owned().await;
        anyhow::ensure!(
            guard.is_some(),
            "the database {} is closed",
            self.shared.name
        );
        Ok(WriteTurn {
            guard: Some(guard),
            may_be_in_transaction: false,
        })
    }

    /// Waits for the write turn, then starts a `BEGIN IMMEDIATE`
    /// transaction, which takes SQLite's write lock at once.
    pub(crate) async fn begin_write(&self) -> anyhow::Result<WriteTransaction> {
        let mut turn = self.write_turn().await?;
        turn.may_be_in_transaction = true;
        if let Err(first) = sqlx::query("BEGIN IMMEDIATE").execute(turn.conn()).await {
            // A transaction left open by a writer that could not roll back
            // (see `WriteTurn`'s drop) makes BEGIN fail: end it and try once
            // more.
            if sqlx::query("ROLLBACK").execute(turn.conn()).await.is_err() {
                turn.may_be_in_transaction = false;
                return Err(first).context("starting a write transaction");
            }
            sqlx::query("BEGIN IMMEDIATE")
                .execute(turn.conn())
                .await
                .context("starting a write transaction")?;
        }
        Ok(WriteTransaction { turn })
    }
}

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        self.idle_readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read connection in use; given back when dropped.
pub(crate) struct ReadConnection<'a> {
    shared: &'a Shared,
    conn: Option<SqliteConnection>,
    // Released after `drop` has put the connection back.
    _permit: SemaphorePermit<'a>,
}

impl ReadConnection<'_> {
    /// The connection, to run statements on.
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a read connection holds its connection until dropped")
    }
}

impl Drop for ReadConnection<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.shared.closed.load(Ordering::SeqCst)
        {
            self.shared.lock_idle().push(conn);
        }
    }
}

/// The write gate held, with the write connection: a statement run on it
/// is a write no other writer of this database can interleave with.
///
/// A turn that may have left a transaction open — a [`WriteTransaction`]
/// dropped before it ended (an early `?` return, a cancelled request), or a
/// batch that opens its own transaction (see [`Self::in_doubt`]) — is not
/// simply handed on when dropped: a task rolls the transaction back first,
/// holding the gate meanwhile, so the next writer never finds it open.
/// (Should no runtime be left to run that task, the next
/// [`SqliteDatabase::begin_write`] rolls it back instead.)
pub(crate) struct WriteTurn {
    guard: Option<OwnedMutexGuard<Option<SqliteConnection>>>,
    may_be_in_transaction: bool,
}

impl WriteTurn {
    /// The write connection.
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.guard
            .as_mut()
            .and_then(|g| g.as_mut())
            .expect("a write turn holds an open connection until dropped")
    }

    /// Runs `sql` — statements that open and commit their own transaction,
    /// such as `BEGIN IMMEDIATE; …; COMMIT` — and returns the rows it
    /// yields. If the future is dropped before the answer, the turn rolls
    /// back whatever may still be open before it hands the gate on. On an
    /// error the transaction is rolled back here (if it is still open) and
    /// the error returned.
    pub(crate) async fn in_doubt<'q>(
        &mut self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> anyhow::Result<Vec<sqlx::sqlite::SqliteRow>> {
        self.may_be_in_transaction = true;
        let result = query.fetch_all(self.conn()).await;
        if result.is_err() {
            // Fails harmlessly when the error already ended the transaction.
            let _ = sqlx::query("ROLLBACK").execute(self.conn()).await;
        }
        self.may_be_in_transaction = false;
        Ok(result?)
    }
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        if !self.may_be_in_transaction {
            return;
        }
        if let Some(guard) = self.guard.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let mut turn = WriteTurn {
                guard: Some(guard),
                may_be_in_transaction: false,
            };
            runtime.spawn(async move {
                let _ = sqlx::query("ROLLBACK").execute(turn.conn()).await;
            });
        }
    }
}

/// A `BEGIN IMMEDIATE` transaction on the write connection, holding the
/// write gate until it commits or rolls back; dropped before either, it is
/// rolled back before the gate passes on (see [`WriteTurn`]).
pub(crate) struct WriteTransaction {
    turn: WriteTurn,
}

impl WriteTransaction {
    /// The write connection, inside the transaction.
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        self.turn.conn()
    }

    /// Commits, then hands the gate on. If the commit fails, the
    /// transaction is rolled back.
    pub(crate) async fn commit(mut self) -> anyhow::Result<()> {
        let result = sqlx::query("COMMIT").execute(self.conn()).await;
        if result.is_err() {
            let _ = sqlx::query("ROLLBACK").execute(self.conn()).await;
        }
        self.turn.may_be_in_transaction = false;
        result.map(drop).context("committing")
    }

    /// Rolls back, then hands the gate on.
    pub(crate) async fn rollback(mut self) -> anyhow::Result<()> {
        let result = sqlx::query("ROLLBACK").execute(self.conn()).await;
        self.turn.may_be_in_transaction = result.is_err();
        result.map(drop).context("rolling back")
    }
}
