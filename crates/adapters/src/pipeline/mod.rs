//! The pipeline runtime: outbox relay → country processors → confirmations,
//! on any transport, run one way.
//!
//! - [`runtime`]: [`Worker`] (one `process_one` step), [`run`] and
//!   [`run_all`] (the one loop, pacing and backoff), [`Shutdown`] (the one
//!   stop signal both binaries use).
//! - [`inbox`]: the [`Inbox`] port (receive / ack / retry later / dead
//!   letter) that the in-process bus and SQS implement, the [`Consumer`]s
//!   (country processor, confirmation handler), the one settling rule
//!   ([`settle`]) and [`InboxWorker`], the one consumer loop.
//! - [`relay`]: [`RelayWorker`], the outbox relay.
//! - [`inline`]: embedded mode's durable in-process delivery.
//! - [`InProcessPipeline`]: every worker over an [`InMemoryBus`], for tests
//!   and library use.

pub mod inbox;
pub mod inline;
pub mod relay;
pub mod runtime;

use std::collections::BTreeMap;
use std::sync::Arc;

use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryProcessor, CountryStore};
use cita_core::events::{ConfirmationPublisher, EventPublisher, Outbox};
use cita_core::routing::{CountryCode, CountryRouter};

pub use inbox::{
    Consumer, Delivery, Failure, Inbox, InboxWorker, MAX_DELIVERIES, Settle, consume, record,
    settle,
};
pub use relay::RelayWorker;
pub use runtime::{Pacing, Shutdown, ShutdownTrigger, Step, Worker, run, run_all};

use crate::memory::{InMemoryBus, InMemoryQueue};

/// The name of a country's queue in process (metrics' `queue` label), as
/// the default AWS topology names it: `cita-appointments-{cc}`.
pub fn in_process_queue(country: CountryCode) -> String {
    format!("cita-appointments-{}", country.lowercase())
}

/// The name of the confirmations queue in process.
pub const CONFIRMATIONS_QUEUE: &str = "cita-confirmations";

/// What the pipeline is built from.
pub struct PipelineParts {
    /// The primary store's outbox.
    pub outbox: Arc<dyn Outbox>,
    /// Where the relay publishes (the topic).
    pub publisher: Arc<dyn EventPublisher>,
    /// Where country processors confirm.
    pub confirmations: Arc<dyn ConfirmationPublisher>,
    /// Each served country's own store.
    pub country_stores: BTreeMap<CountryCode, Arc<dyn CountryStore>>,
    /// Applies confirmations to the primary store.
    pub confirmation_handler: ConfirmationHandler,
    /// Which countries are served.
    pub router: CountryRouter,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// Every worker of the in-process pipeline over an [`InMemoryBus`]: the
/// relay, one consumer per country queue, one for confirmations.
pub struct InProcessPipeline {
    relay: Arc<RelayWorker>,
    countries: Vec<Arc<InboxWorker<Arc<InMemoryQueue>, CountryProcessor>>>,
    confirmations: Arc<InboxWorker<Arc<InMemoryQueue>, ConfirmationHandler>>,
    pacing: Pacing,
}

impl InProcessPipeline {
    /// Builds the workers over `bus`'s queues (one per country store).
    /// A country store without a queue on the bus is skipped with an error log.
    pub fn new(bus: &InMemoryBus, parts: PipelineParts) -> Self {
        let relay = Arc::new(RelayWorker::new(parts.outbox, parts.publisher));
        let mut countries = Vec::new();
        for (country, store) in parts.country_stores {
            let Some(queue) = bus.country_queue(country) else {
                tracing::error!(%country, "no queue for a country store; it will receive nothing");
                continue;
            };
            let processor = CountryProcessor::new(
                country,
                parts.router.clone(),
                store,
                Arc::clone(&parts.confirmations),
                Arc::clone(&parts.clock),
            );
            countries.push(Arc::new(InboxWorker::new(queue, processor)));
        }
        let confirmations = Arc::new(InboxWorker::new(
            bus.confirmations(),
            parts.confirmation_handler,
        ));
        Self {
            relay,
            countries,
            confirmations,
            pacing: Pacing::default(),
        }
    }

    /// How the workers pace themselves (idle wait 20 ms by default).
    #[must_use]
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    fn workers(&self) -> Vec<Arc<dyn Worker>> {
        let mut all: Vec<Arc<dyn Worker>> = vec![self.relay.clone()];
        all.extend(
            self.countries
                .iter()
                .map(|w| Arc::clone(w) as Arc<dyn Worker>),
        );
        all.push(self.confirmations.clone());
        all
    }

    /// Runs every step until all are empty: deterministic, for tests and
    /// for flushing at shutdown.
    ///
    /// # Errors
    /// A relay failure (messages that fail are returned to their queue and
    /// count as processed, so they are retried, up to dead-lettering).
    pub async fn drain(&self) -> anyhow::Result<()> {
        let never = Shutdown::never();
        loop {
            let mut busy = false;
            for worker in self.workers() {
                busy |= worker.process_one(&never).await? == Step::Processed;
            }
            if !busy {
                return Ok(());
            }
        }
    }

    /// Runs every worker in its own task until `shutdown` is raised, then
    /// lets each finish the message in hand; the relay flushes once more.
    pub async fn run(self, shutdown: Shutdown) {
        run_all(self.workers(), shutdown, self.pacing).await;
    }
}
