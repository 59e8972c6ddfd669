//! Embedded mode, the default: the primary store in `{data_dir}/cita.db`,
//! each served country's store in `{data_dir}/country-{cc}.db`, the
//! in-process bus, the outbox relay, country processors and confirmation
//! handler all inside this process.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cita_adapters::clock::SystemClock;
use cita_adapters::memory::{
    InMemoryAppointmentStore, InMemoryBus, InMemoryCountryStore, InMemoryIdempotencyStore,
    InMemoryProviderStore, InMemorySlotLock,
};
use cita_adapters::pipeline::{InProcessPipeline, PipelineParts};
use cita_core::booking::BookingService;
use cita_core::clock::Clock;
use cita_core::country::CountryStore;
use cita_core::events::Outbox;

use crate::config::Config;
use crate::http::ReadinessCheck;

/// Everything embedded mode runs.
pub struct Embedded {
    /// The use cases.
    pub service: Arc<BookingService>,
    /// The primary store's outbox.
    pub outbox: Arc<dyn Outbox>,
    /// What `/ready` checks.
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// Relay → country processors → confirmations.
    pub pipeline: InProcessPipeline,
}

struct AlwaysReady(&'static str);

#[async_trait]
impl ReadinessCheck for AlwaysReady {
    fn name(&self) -> &str {
        self.0
    }
    async fn check(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Embedded {
    /// Opens (creating if needed) the SQLite files and wires everything.
    ///
    /// # Errors
    /// A file that cannot be created or migrated.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let router = config.router();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let appointments = Arc::new(InMemoryAppointmentStore::new());
        let bus = Arc::new(InMemoryBus::new(&router));
        let service = Arc::new(
            BookingService::new(
                Arc::new(InMemoryProviderStore::new()),
                appointments.clone(),
                Arc::new(InMemoryIdempotencyStore::new()),
                router.clone(),
                Arc::clone(&clock),
            )
            .with_lock(Arc::new(InMemorySlotLock::new())),
        );
        let country_stores: BTreeMap<_, Arc<dyn CountryStore>> = router
            .countries()
            .map(|c| {
                (
                    c,
                    Arc::new(InMemoryCountryStore::new()) as Arc<dyn CountryStore>,
                )
            })
            .collect();
        let pipeline = InProcessPipeline::new(
            &bus,
            PipelineParts {
                outbox: appointments.clone(),
                publisher: bus.clone(),
                confirmations: bus.clone(),
                country_stores,
                service: Arc::clone(&service),
                router,
                clock,
            },
        );
        Ok(Self {
            service,
            outbox: appointments,
            readiness: vec![Arc::new(AlwaysReady("primary-store"))],
            pipeline,
        })
    }
}
