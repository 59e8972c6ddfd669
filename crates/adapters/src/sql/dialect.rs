//! What a relational dialect tells the shared stores: how to get a
//! connection to read, to write and to run a transaction on, the statements
//! of each store, and which errors are worth another attempt.

use std::future::Future;
use std::hash::{BuildHasher as _, RandomState};
use std::time::Duration;

use sqlx::Database;

use super::country::CountrySql;
use super::driver::Driver;
use super::idempotency::IdempotencySql;
use super::providers::ProviderSql;
use super::reads::{AppointmentSql, OutboxSql};

/// A connection in use: a read connection, a write turn, a transaction.
pub(crate) trait Handle<DB: Database>: Send {
    fn conn(&mut self) -> &mut DB::Connection;
}

/// A transaction in use; dropped before it ends, it is rolled back.
pub(crate) trait Transaction<DB: Database>: Handle<DB> {
    fn commit(self) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn rollback(self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

impl<DB: Database> Handle<DB> for sqlx::pool::PoolConnection<DB> {
    fn conn(&mut self) -> &mut DB::Connection {
        self
    }
}

impl<DB: Database> Handle<DB> for sqlx::Transaction<'static, DB> {
    fn conn(&mut self) -> &mut DB::Connection {
        self
    }
}

impl<DB: Database> Transaction<DB> for sqlx::Transaction<'static, DB> {
    async fn commit(self) -> anyhow::Result<()> {
        sqlx::Transaction::commit(self)
            .await
            .map_err(|e| anyhow::Error::new(e).context("committing"))
    }

    async fn rollback(self) -> anyhow::Result<()> {
        sqlx::Transaction::rollback(self)
            .await
            .map_err(|e| anyhow::Error::new(e).context("rolling back"))
    }
}

/// One relational database of one dialect, as the shared stores use it.
pub(crate) trait Dialect: Clone + Send + Sync + 'static {
    type Db: Driver;
    type Reader<'a>: Handle<Self::Db>
    where
        Self: 'a;
    type Writer<'a>: Handle<Self::Db>
    where
        Self: 'a;
    type Tx<'a>: Transaction<Self::Db>
    where
        Self: 'a;

    /// The adapter's name in metrics (`sqlite`, `postgres`, `mysql`).
    const NAME: &'static str;
    const PROVIDERS: ProviderSql;
    const IDEMPOTENCY: IdempotencySql;
    const COUNTRY: CountrySql;
    const APPOINTMENTS: AppointmentSql;
    const OUTBOX: OutboxSql;

    /// A connection for reads outside transactions.
    fn read(&self) -> impl Future<Output = anyhow::Result<Self::Reader<'_>>> + Send;
    /// A connection for one single-statement write.
    fn write(&self) -> impl Future<Output = anyhow::Result<Self::Writer<'_>>> + Send;
    /// A transaction whose locking reads hold what they read until it ends
    /// (`BEGIN IMMEDIATE` on SQLite, `FOR UPDATE` in the statements elsewhere).
    fn begin(&self) -> impl Future<Output = anyhow::Result<Self::Tx<'_>>> + Send;

    /// Why an error is worth another attempt of its transaction (a
    /// deadlock, a lock wait that timed out), for metrics; `None` if not.
    fn transient(e: &sqlx::Error) -> Option<&'static str>;
}

/// A row another transaction created first: the attempt starts over and
/// then finds it.
#[derive(Debug)]
pub(crate) struct Contended;

impl std::fmt::Display for Contended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another transaction created the same row first")
    }
}

impl std::error::Error for Contended {}

/// Whether `e` is a unique key's refusal.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Attempts of one transaction when each failure is transient.
pub(crate) const ATTEMPTS: u32 = 6;

/// Why `e` is transient for dialect `D`, looking through its context.
pub(crate) fn transient_reason<D: Dialect>(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|cause| {
        if cause.is::<Contended>() {
            return Some("contended");
        }
        cause.downcast_ref::<sqlx::Error>().and_then(D::transient)
    })
}

/// An error that may be transient.
pub(crate) trait MaybeTransient {
    fn transient_reason<D: Dialect>(&self) -> Option<&'static str>;
}

impl MaybeTransient for anyhow::Error {
    fn transient_reason<D: Dialect>(&self) -> Option<&'static str> {
        transient_reason::<D>(self)
    }
}

impl MaybeTransient for cita_core::booking::AppointmentWriteError {
    fn transient_reason<D: Dialect>(&self) -> Option<&'static str> {
        match self {
            Self::Unexpected(e) => transient_reason::<D>(e),
            _ => None,
        }
    }
}

impl MaybeTransient for cita_core::providers::ProviderWriteError {
    fn transient_reason<D: Dialect>(&self) -> Option<&'static str> {
        match self {
            Self::Unexpected(e) => transient_reason::<D>(e),
            _ => None,
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has failed
/// [`ATTEMPTS`] times, sleeping a growing, jittered while between attempts.
/// The one retry policy of the relational stores.
pub(crate) async fn retrying<D, T, E, F, Fut>(what: &'static str, mut attempt: F) -> Result<T, E>
where
    D: Dialect,
    E: MaybeTransient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if tries < ATTEMPTS => {
                let Some(reason) = e.transient_reason::<D>() else {
                    return Err(e);
                };
                metrics::counter!(
                    "cita_store_retries_total",
                    "adapter" => D::NAME,
                    "reason" => reason
                )
                .increment(1);
                tracing::debug!(
                    what,
                    reason,
                    tries,
                    adapter = D::NAME,
                    "retrying a transaction"
                );
                let base = 1_u64 << tries.min(8);
                let jitter = RandomState::new().hash_one(tries) % (base + 1);
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                tries += 1;
            }
            done => return done,
        }
    }
}
