//! The in-process pipeline: outbox relay → country queues → country
//! processors → confirmations queue → confirmation handler. Each stage is a
//! worker with one `process_one` step (so tests can drain them
//! deterministically) and a loop that runs it until shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cita_core::booking::{BookingService, ConfirmError};
use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryProcessor, CountryStore};
use cita_core::events::{ConfirmationPublisher, EventPublisher, Outbox, OutboxRelay, RelayOutcome};
use cita_core::routing::{CountryCode, CountryRouter};
use tokio::sync::watch;

use crate::memory::{InMemoryBus, InMemoryQueue};

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Work was done (a batch relayed or a message handled, successfully or not).
    Processed,
    /// Nothing was waiting.
    Empty,
}

/// Publishes the outbox.
pub struct RelayWorker {
    relay: OutboxRelay,
}

impl RelayWorker {
    /// A relay over `outbox` publishing to `publisher`.
    pub fn new(outbox: Arc<dyn Outbox>, publisher: Arc<dyn EventPublisher>) -> Self {
        Self {
            relay: OutboxRelay::new(outbox, publisher, 100),
        }
    }

    /// Relays one batch.
    ///
    /// # Errors
    /// The outbox's or publisher's failure; the entries stay for the next step.
    pub async fn process_one(&self) -> anyhow::Result<Step> {
        Ok(match self.relay.relay_once().await? {
            RelayOutcome::Published(_) => Step::Processed,
            RelayOutcome::Empty => Step::Empty,
        })
    }

    /// Relays until `shutdown` resolves: batch after batch while there is
    /// work, looking again every `idle` when the outbox is empty, and ten
    /// times `idle` after a failure (the entries stay and are retried).
    /// The batch in hand is always finished; then the outbox is flushed
    /// once more, so nothing committed before shutdown waits for the next
    /// start unless the publisher is down.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send, idle: Duration) {
        tokio::pin!(shutdown);
        loop {
            let pause = match self.process_one().await {
                Ok(Step::Processed) => None,
                Ok(Step::Empty) => Some(idle),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "outbox relay failed; retrying");
                    Some(idle * 10)
                }
            };
            let stop = match pause {
                None => tokio::select! {
                    biased;
                    () = &mut shutdown => true,
                    () = std::future::ready(()) => false,
                },
                Some(pause) => tokio::select! {
                    () = &mut shutdown => true,
                    () = tokio::time::sleep(pause) => false,
                },
            };
            if stop {
                break;
            }
        }
        loop {
            match self.process_one().await {
                Ok(Step::Processed) => {}
                Ok(Step::Empty) => break,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "final outbox flush failed; the events stay in the outbox");
                    break;
                }
            }
        }
    }
}

/// Consumes one country's queue.
pub struct CountryWorker {
    queue: Arc<InMemoryQueue>,
    processor: CountryProcessor,
}

impl CountryWorker {
    /// A worker feeding `queue` to `processor`.
    pub fn new(queue: Arc<InMemoryQueue>, processor: CountryProcessor) -> Self {
        Self { queue, processor }
    }

    /// Handles one message: acknowledged after success, returned after a
    /// failure (dead-lettered after the fifth receive).
    pub async fn process_one(&self) -> Step {
        let Some(delivery) = self.queue.receive() else {
            return Step::Empty;
        };
        match self.processor.process(&delivery.event).await {
            Ok(outcome) => {
                tracing::debug!(
                    country = %self.processor.country(),
                    event_id = %delivery.event.event_id,
                    ?outcome,
                    "country event processed"
                );
                self.queue.ack(delivery.receipt);
            }
            Err(e) => {
                tracing::warn!(
                    country = %self.processor.country(),
                    event_id = %delivery.event.event_id,
                    receives = delivery.receives,
                    error = %e,
                    "country event failed; it will be retried"
                );
                self.queue.nack(delivery.receipt);
            }
        }
        Step::Processed
    }
}

/// Consumes the confirmations queue.
pub struct ConfirmationWorker {
    queue: Arc<InMemoryQueue>,
    handler: ConfirmationHandler,
}

impl ConfirmationWorker {
    /// A worker feeding `queue` to `handler`.
    pub fn new(queue: Arc<InMemoryQueue>, handler: ConfirmationHandler) -> Self {
        Self { queue, handler }
    }

    /// Handles one confirmation: acknowledged after success, returned after a
    /// failure.
    pub async fn process_one(&self) -> Step {
        let Some(delivery) = self.queue.receive() else {
            return Step::Empty;
        };
        match self.handler.handle(&delivery.event).await {
            Ok(outcome) => {
                tracing::debug!(appointment_id = %delivery.event.appointment_id, ?outcome, "confirmation applied");
                self.queue.ack(delivery.receipt);
            }
            Err(e) => {
                let level_is_error = matches!(e, ConfirmError::Unexpected(_));
                tracing::warn!(
                    appointment_id = %delivery.event.appointment_id,
                    receives = delivery.receives,
                    unexpected = level_is_error,
                    error = %e,
                    "confirmation failed; it will be retried"
                );
                self.queue.nack(delivery.receipt);
            }
        }
        Step::Processed
    }
}

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
    /// The booking service confirmations are applied through.
    pub service: Arc<BookingService>,
    /// Which countries are served.
    pub router: CountryRouter,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// Every worker of the in-process pipeline.
pub struct InProcessPipeline {
    relay: RelayWorker,
    countries: Vec<CountryWorker>,
    confirmations: ConfirmationWorker,
    idle: Duration,
}

impl InProcessPipeline {
    /// Builds the workers over `bus`'s queues (one per country store).
    /// A country store without a queue on the bus is skipped with an error log.
    pub fn new(bus: &InMemoryBus, parts: PipelineParts) -> Self {
        let relay = RelayWorker::new(parts.outbox, parts.publisher);
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
            countries.push(CountryWorker::new(queue, processor));
        }
        let confirmations =
            ConfirmationWorker::new(bus.confirmations(), ConfirmationHandler::new(parts.service));
        Self {
            relay,
            countries,
            confirmations,
            idle: Duration::from_millis(20),
        }
    }

    /// How long an idle worker waits before looking again (default 20 ms).
    #[must_use]
    pub fn with_idle_wait(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// Runs every step until all are empty: deterministic, for tests and
    /// for flushing at shutdown.
    ///
    /// # Errors
    /// A relay failure (messages that fail are returned to their queue and
    /// count as processed, so they are retried, up to dead-lettering).
    pub async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let mut busy = self.relay.process_one().await? == Step::Processed;
            for w in &self.countries {
                busy |= w.process_one().await == Step::Processed;
            }
            busy |= self.confirmations.process_one().await == Step::Processed;
            if !busy {
                return Ok(());
            }
        }
    }

    /// Runs every worker in its own task until `shutdown` resolves, then
    /// lets each finish the message in hand and flushes the relay once more.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let idle = self.idle;
        let mut tasks = tokio::task::JoinSet::new();
        let relay = Arc::new(self.relay);
        {
            let relay = Arc::clone(&relay);
            let stop = stop_rx.clone();
            tasks.spawn(async move {
                worker_loop(stop, idle, || async {
                    match relay.process_one().await {
                        Ok(step) => step,
                        Err(e) => {
                            tracing::warn!(error = %e, "outbox relay failed; retrying");
                            Step::Empty
                        }
                    }
                })
                .await;
            });
        }
        for worker in self.countries {
            let worker = Arc::new(worker);
            let stop = stop_rx.clone();
            tasks.spawn(async move {
                worker_loop(stop, idle, || {
                    let w = Arc::clone(&worker);
                    async move { w.process_one().await }
                })
                .await;
            });
        }
        {
            let worker = Arc::new(self.confirmations);
            let stop = stop_rx.clone();
            tasks.spawn(async move {
                worker_loop(stop, idle, || {
                    let w = Arc::clone(&worker);
                    async move { w.process_one().await }
                })
                .await;
            });
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // Flush what was committed before shutdown so no event waits for the next start.
        if let Err(e) = relay.process_one().await {
            tracing::warn!(error = %e, "final outbox flush failed; events stay in the outbox");
        }
    }
}

async fn worker_loop<F, Fut>(mut stop: watch::Receiver<bool>, idle: Duration, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Step>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        if step().await == Step::Empty {
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(idle) => {}
            }
        }
    }
}
