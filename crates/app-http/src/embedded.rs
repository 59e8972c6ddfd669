//! Embedded mode, the default: the primary store in `{data_dir}/cita.db`,
//! each served country's store in `{data_dir}/country-{cc}.db`, and the
//! outbox relay delivering in-process to the country processors and the
//! confirmation handler ([`InlinePipeline`]): an event counts as published
//! only once its country recorded it and the confirmation was applied, so a
//! crash or stop at any point loses nothing.
//!
//! This process is the only writer of its data folder (two processes on one
//! folder is not a supported deployment), which is what makes the caches of
//! [`cache`] valid here and nowhere else.

pub mod cache;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use cita_adapters::clock::SystemClock;
use cita_adapters::inline::InlinePipeline;
use cita_adapters::memory::InMemorySlotLock;
use cita_adapters::sqlite::{
    SqliteAppointmentStore, SqliteCountryStore, SqliteDatabase, SqliteIdempotencyStore,
    SqliteOptions, SqliteProviderStore,
};
use cita_core::booking::BookingService;
use cita_core::clock::Clock;
use cita_core::country::CountryStore;
use cita_core::events::Outbox;

use self::cache::{SingleWriterAppointmentCache, SingleWriterProviderCache};
use crate::config::Config;
use crate::http::ReadinessCheck;
use crate::observer::MetricsObserver;

/// Everything embedded mode runs.
pub struct Embedded {
    /// The use cases.
    pub service: Arc<BookingService>,
    /// The primary store's outbox.
    pub outbox: Arc<dyn Outbox>,
    /// What `/ready` checks.
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Relay → country processors → confirmations, durable through the outbox.
    pub pipeline: InlinePipeline,
    /// The data folder's lock (`{data_dir}/cita.lock`), to be held for as
    /// long as the stores are in use.
    pub data_lock: DataLock,
}

/// An exclusive lock on the data folder: a second process on the same
/// folder is refused at start, which keeps this process the single writer
/// the caches of [`cache`] rely on. Released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct DataLock {
    _file: std::fs::File,
}

impl DataLock {
    fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("cita.lock");
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => anyhow::anyhow!(
                "another process is using the data directory {} (it holds {}); \
                 embedded mode needs a data directory of its own",
                dir.display(),
                path.display()
            ),
            std::fs::TryLockError::Error(e) => {
                anyhow::Error::new(e).context(format!("locking {}", path.display()))
            }
        })?;
        Ok(Self { _file: file })
    }
}

/// `/ready` for one SQLite file: a `SELECT 1` on one of its read connections.
struct SqliteReady {
    name: String,
    db: SqliteDatabase,
}

#[async_trait]
impl ReadinessCheck for SqliteReady {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.db.ping().await
    }
}

async fn open(dir: &Path, file: &str, options: SqliteOptions) -> anyhow::Result<SqliteDatabase> {
    let path = dir.join(file);
    let text = path
        .to_str()
        .with_context(|| format!("data path {} is not UTF-8", path.display()))?;
    SqliteDatabase::connect_with(text, options).await
}

impl Embedded {
    /// Opens (creating if needed) the SQLite files under `data_dir` and wires
    /// the service, the in-process bus and the pipeline.
    ///
    /// # Errors
    /// The folder or a file cannot be created, opened or migrated.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let data_lock = DataLock::acquire(dir)?;
        let router = config.router();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let options = SqliteOptions {
            synchronous: config.sqlite_synchronous.into(),
            ..SqliteOptions::default()
        };

        let primary = open(dir, "cita.db", options).await?;
        let appointments = Arc::new(SqliteAppointmentStore::new(&primary));
        // Valid because this process is the only writer of its files (see `cache`).
        let providers =
            SingleWriterProviderCache::new(Arc::new(SqliteProviderStore::new(&primary)));
        let cached_appointments = SingleWriterAppointmentCache::new(appointments.clone());
        let service = Arc::new(
            BookingService::new(
                Arc::new(providers),
                Arc::new(cached_appointments),
                Arc::new(SqliteIdempotencyStore::new(&primary)),
                router.clone(),
                Arc::clone(&clock),
            )
            .with_lock(Arc::new(InMemorySlotLock::new()))
            .with_observer(Arc::new(MetricsObserver)),
        );
        let mut readiness: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(SqliteReady {
            name: "primary-store".into(),
            db: primary,
        })];
        let mut country_stores: BTreeMap<_, Arc<dyn CountryStore>> = BTreeMap::new();
        for country in router.countries() {
            let db = open(dir, &format!("country-{}.db", country.lowercase()), options).await?;
            country_stores.insert(country, Arc::new(SqliteCountryStore::new(&db)));
            readiness.push(Arc::new(SqliteReady {
                name: format!("country-store-{}", country.lowercase()),
                db,
            }));
        }
        let pipeline = InlinePipeline::new(
            appointments.clone(),
            Arc::clone(&service),
            &router,
            country_stores,
            clock,
        );
        Ok(Self {
            service,
            outbox: appointments,
            readiness,
            pipeline,
            data_lock,
        })
    }
}
