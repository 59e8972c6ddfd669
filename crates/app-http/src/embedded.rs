//! Embedded mode, the default: the primary store in `{data_dir}/cita.db`,
//! each served country's store in `{data_dir}/country-{cc}.db`, and the
//! outbox relay delivering in-process to the country processors and the
//! confirmation handler ([`InlinePipeline`]): an event counts as published
//! only once its country recorded it and the confirmation was applied, so a
//! crash or stop at any point loses nothing.

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
    SqliteProviderStore,
};
use cita_core::booking::BookingService;
use cita_core::clock::Clock;
use cita_core::country::CountryStore;
use cita_core::events::Outbox;

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
}

/// `/ready` for one SQLite file: a `SELECT 1` on its pool.
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

async fn open(dir: &Path, file: &str) -> anyhow::Result<SqliteDatabase> {
    let path = dir.join(file);
    let text = path
        .to_str()
        .with_context(|| format!("data path {} is not UTF-8", path.display()))?;
    SqliteDatabase::connect(text).await
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
        let router = config.router();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);

        let primary = open(dir, "cita.db").await?;
        let appointments = Arc::new(SqliteAppointmentStore::new(&primary));
        let service = Arc::new(
            BookingService::new(
                Arc::new(SqliteProviderStore::new(&primary)),
                appointments.clone(),
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
            let db = open(dir, &format!("country-{}.db", country.lowercase())).await?;
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
        })
    }
}
