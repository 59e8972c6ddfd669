//! Durable in-process delivery, for embedded mode: the relay's "publish" runs
//! the country processor and the confirmation handler right away, and returns
//! only once the country has recorded the event and the confirmation has been
//! applied. The outbox entry is marked published only after that, so a crash
//! at any point leaves it in the outbox and it is delivered again after the
//! restart; every step is idempotent, so redelivery gives the same result.
//!
//! (The queue-based [`super::InProcessPipeline`] models SNS/SQS semantics in
//! memory — fan-out, acknowledgements, dead letters — for tests and library
//! use, but what sits in its queues dies with the process.)
//!
//! Failures are settled by the same rule as on every queue
//! ([`super::settle`]), the relay's publish being the delivery: a permanent
//! failure (unserved country, an event in the wrong queue, an inconsistent
//! envelope, a confirmation for an unknown appointment) is dead-lettered —
//! logged at error level, counted in `cita_messages_dead_lettered_total{queue}`
//! and skipped, so it never blocks the events behind it. A transient failure
//! (a store down) makes the publish fail, so the relay retries the same
//! event, in order, on its next step; here it is never given up on, since
//! the outbox, not a queue, holds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryProcessor, CountryStore};
use cita_core::events::{ConfirmationPublisher, EventEnvelope, EventPublisher, Outbox};
use cita_core::routing::{CountryCode, CountryRouter};

use super::inbox::{Consumer, Settle, consume, record, settle};
use super::relay::RelayWorker;
use super::runtime::{Pacing, Shutdown, Step, run};
use super::{CONFIRMATIONS_QUEUE, in_process_queue};

/// Hands `event` to `consumer` and settles the outcome: `Ok` when it is
/// done or dead-lettered, the failure when the relay must try again.
async fn deliver(
    queue: &str,
    consumer: &dyn Consumer,
    event: &EventEnvelope,
) -> anyhow::Result<()> {
    let outcome = consume(consumer, Ok(event)).await;
    // One delivery per relay step; a transient failure is never the last.
    let settled = settle(&outcome, 1, u32::MAX);
    record(
        queue,
        &event.event_id.to_string(),
        1,
        settled,
        outcome.as_ref().err(),
    );
    match (settled, outcome) {
        (Settle::RetryLater, Err(failure)) => Err(failure.error),
        _ => Ok(()),
    }
}

/// Applies confirmations to the primary store as they are published.
pub struct InlineConfirmations {
    handler: ConfirmationHandler,
}

impl InlineConfirmations {
    /// Confirmations go straight to `handler`.
    pub fn new(handler: ConfirmationHandler) -> Self {
        Self { handler }
    }
}

#[async_trait]
impl ConfirmationPublisher for InlineConfirmations {
    async fn publish_confirmation(&self, confirmation: &EventEnvelope) -> anyhow::Result<()> {
        deliver(CONFIRMATIONS_QUEUE, &self.handler, confirmation).await
    }
}

/// Delivers country work to each country's processor as it is published.
pub struct InlineDelivery {
    processors: BTreeMap<CountryCode, (String, CountryProcessor)>,
}

impl InlineDelivery {
    /// One processor per country store; confirmations go to `confirmations`.
    pub fn new(
        router: &CountryRouter,
        stores: BTreeMap<CountryCode, Arc<dyn CountryStore>>,
        confirmations: Arc<dyn ConfirmationPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let processors = stores
            .into_iter()
            .map(|(country, store)| {
                let processor = CountryProcessor::new(
                    country,
                    router.clone(),
                    store,
                    Arc::clone(&confirmations),
                    Arc::clone(&clock),
                );
                (country, (in_process_queue(country), processor))
            })
            .collect();
        Self { processors }
    }
}

#[async_trait]
impl EventPublisher for InlineDelivery {
    async fn publish(&self, event: &EventEnvelope) -> anyhow::Result<()> {
        if !event.event_type.is_country_work() {
            // No transport carries external events in embedded mode (and the
            // confirmation handler writes none there); one written by an
            // earlier version has no subscriber.
            return Ok(());
        }
        match self.processors.get(&event.country_iso) {
            Some((queue, processor)) => deliver(queue, processor, event).await,
            // No processor: the country is not served, which the processor
            // of any country would answer with a permanent failure.
            None => {
                let failure = super::Failure {
                    permanent: true,
                    error: anyhow::anyhow!("country {} is not served", event.country_iso),
                };
                record(
                    "unrouted",
                    &event.event_id.to_string(),
                    1,
                    Settle::DeadLetter,
                    Some(&failure),
                );
                Ok(())
            }
        }
    }
}

/// Embedded mode's pipeline: the outbox relay publishing to [`InlineDelivery`].
pub struct InlinePipeline {
    relay: RelayWorker,
    pacing: Pacing,
}

impl InlinePipeline {
    /// Relay → country processors → confirmations (through `confirmations`),
    /// all from `outbox`.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        confirmations: ConfirmationHandler,
        router: &CountryRouter,
        stores: BTreeMap<CountryCode, Arc<dyn CountryStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let confirmations: Arc<dyn ConfirmationPublisher> =
            Arc::new(InlineConfirmations::new(confirmations));
        let delivery = Arc::new(InlineDelivery::new(router, stores, confirmations, clock));
        Self {
            relay: RelayWorker::new(outbox, delivery),
            pacing: Pacing::idle(std::time::Duration::from_millis(10)),
        }
    }

    /// Relays until the outbox is empty.
    ///
    /// # Errors
    /// A store failure; what was not delivered stays in the outbox.
    pub async fn drain(&self) -> anyhow::Result<()> {
        while self.relay.relay_once().await? == Step::Processed {}
        Ok(())
    }

    /// Relays until `shutdown` is raised, finishing the batch in hand, then
    /// drains what is left once more.
    pub async fn run(self, shutdown: Shutdown) {
        run(&self.relay, &shutdown, self.pacing).await;
    }
}
