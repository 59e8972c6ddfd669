//! Store selection by URL: `postgres://…` and `mysql://…` open the matching
//! adapter for the primary store or a country's store; `redis://…` opens the
//! slot lock. Each opened dependency comes with its `/ready` check.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use cita_adapters::mysql::{
    MySqlAppointmentStore, MySqlCountryStore, MySqlDatabase, MySqlIdempotencyStore,
    MySqlPoolSettings, MySqlProviderStore,
};
use cita_adapters::postgres::{
    PoolSettings, PostgresAppointmentStore, PostgresCountryStore, PostgresDatabase,
    PostgresIdempotencyStore, PostgresProviderStore,
};
use cita_adapters::redis::{RedisLockSettings, RedisSlotLock};
use cita_core::booking::{AppointmentStore, IdempotencyStore, SlotLock};
use cita_core::country::CountryStore;
use cita_core::events::Outbox;
use cita_core::providers::ProviderStore;

use crate::http::ReadinessCheck;

/// Pool sizing shared by the server databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections per pool at most.
    pub max_connections: u32,
    /// How long a request waits for a free connection.
    pub acquire_timeout: Duration,
}

/// The primary store's ports over one database.
pub struct Primary {
    /// Providers.
    pub providers: Arc<dyn ProviderStore>,
    /// Appointments.
    pub appointments: Arc<dyn AppointmentStore>,
    /// The outbox of the same database.
    pub outbox: Arc<dyn Outbox>,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Its readiness check.
    pub ready: Arc<dyn ReadinessCheck>,
}

/// A named readiness check over an async ping.
pub struct Ping<T> {
    name: String,
    target: T,
}

impl<T> Ping<T> {
    /// A check called `name`.
    pub fn new(name: impl Into<String>, target: T) -> Self {
        Self {
            name: name.into(),
            target,
        }
    }
}

/// Something that answers a ping.
#[async_trait]
pub trait Pingable: Send + Sync + 'static {
    /// Answers when reachable.
    async fn ping(&self) -> anyhow::Result<()>;
}

#[async_trait]
impl Pingable for PostgresDatabase {
    async fn ping(&self) -> anyhow::Result<()> {
        PostgresDatabase::ping(self).await
    }
}

#[async_trait]
impl Pingable for MySqlDatabase {
    async fn ping(&self) -> anyhow::Result<()> {
        MySqlDatabase::ping(self).await
    }
}

#[async_trait]
impl Pingable for Arc<RedisSlotLock> {
    async fn ping(&self) -> anyhow::Result<()> {
        RedisSlotLock::ping(self).await
    }
}

#[async_trait]
impl<T: Pingable> ReadinessCheck for Ping<T> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.target.ping().await
    }
}

/// Which server a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
}

impl Kind {
    /// The kind of a database URL, if it is a server one.
    pub fn of(url: &str) -> Option<Kind> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase())?;
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Kind::Postgres),
            "mysql" | "mariadb" => Some(Kind::MySql),
            _ => None,
        }
    }
}

fn pg_settings(pool: PoolConfig) -> PoolSettings {
    PoolSettings {
        max_connections: pool.max_connections,
        acquire_timeout: pool.acquire_timeout,
        ..PoolSettings::default()
    }
}

fn mysql_settings(pool: PoolConfig) -> MySqlPoolSettings {
    MySqlPoolSettings {
        max_connections: pool.max_connections,
        acquire_timeout: pool.acquire_timeout,
        ..MySqlPoolSettings::default()
    }
}

fn mysql_url(url: &str) -> String {
    // sqlx knows the scheme as mysql://; MariaDB speaks the same protocol.
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    }
}

/// Opens the primary store on a server database.
///
/// # Errors
/// The server cannot be reached or migrated (the URL's password is never printed).
pub async fn open_primary(kind: Kind, url: &str, pool: PoolConfig) -> anyhow::Result<Primary> {
    Ok(match kind {
        Kind::Postgres => {
            let db = PostgresDatabase::connect(url, pg_settings(pool))
                .await
                .context("opening the primary PostgreSQL store")?;
            let appointments = Arc::new(PostgresAppointmentStore::new(&db));
            Primary {
                providers: Arc::new(PostgresProviderStore::new(&db)),
                appointments: appointments.clone(),
                outbox: appointments,
                idempotency: Arc::new(PostgresIdempotencyStore::new(&db)),
                ready: Arc::new(Ping::new("primary-store", db)),
            }
        }
        Kind::MySql => {
            let db = MySqlDatabase::connect(&mysql_url(url), &mysql_settings(pool))
                .await
                .context("opening the primary MySQL store")?;
            let appointments = Arc::new(MySqlAppointmentStore::new(&db));
            Primary {
                providers: Arc::new(MySqlProviderStore::new(&db)),
                appointments: appointments.clone(),
                outbox: appointments,
                idempotency: Arc::new(MySqlIdempotencyStore::new(&db)),
                ready: Arc::new(Ping::new("primary-store", db)),
            }
        }
    })
}

/// Opens one country's store on a server database.
///
/// # Errors
/// The server cannot be reached or migrated.
pub async fn open_country(
    kind: Kind,
    url: &str,
    pool: PoolConfig,
    name: String,
) -> anyhow::Result<(Arc<dyn CountryStore>, Arc<dyn ReadinessCheck>)> {
    Ok(match kind {
        Kind::Postgres => {
            let db = PostgresDatabase::connect(url, pg_settings(pool))
                .await
                .with_context(|| format!("opening {name} (PostgreSQL)"))?;
            (
                Arc::new(PostgresCountryStore::new(&db)) as Arc<dyn CountryStore>,
                Arc::new(Ping::new(name, db)) as Arc<dyn ReadinessCheck>,
            )
        }
        Kind::MySql => {
            let db = MySqlDatabase::connect(&mysql_url(url), &mysql_settings(pool))
                .await
                .with_context(|| format!("opening {name} (MySQL)"))?;
            (
                Arc::new(MySqlCountryStore::new(&db)) as Arc<dyn CountryStore>,
                Arc::new(Ping::new(name, db)) as Arc<dyn ReadinessCheck>,
            )
        }
    })
}

/// Opens the Redis slot lock (lazily connected: the service starts while Redis is down).
///
/// # Errors
/// The URL does not parse.
pub fn open_lock(url: &str) -> anyhow::Result<(Arc<dyn SlotLock>, Arc<dyn ReadinessCheck>)> {
    let lock = Arc::new(RedisSlotLock::new(
        url,
        "cita:",
        RedisLockSettings::default(),
    )?);
    Ok((
        lock.clone() as Arc<dyn SlotLock>,
        Arc::new(Ping::new("slot-lock", lock)) as Arc<dyn ReadinessCheck>,
    ))
}
