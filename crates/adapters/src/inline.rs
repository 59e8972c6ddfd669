//! Durable in-process delivery, for embedded mode: the relay's "publish" runs
//! the country processor and the confirmation handler right away, and returns
//! only once the country has recorded the event and the confirmation has been
//! applied. The outbox entry is marked published only after that, so a crash
//! at any point leaves it in the outbox and it is delivered again after the
//! restart; every step is idempotent, so redelivery gives the same result.
//!
//! (The queue-based [`crate::pipeline::InProcessPipeline`] models SNS/SQS
//! semantics in memory — fan-out, acknowledgements, dead letters — for tests
//! and library use, but what sits in its queues dies with the process.)
//!
//! Failures: a store failure (`Unexpected`) makes the publish fail, so the
//! relay retries the same event, in order, on its next step. A message that
//! can never succeed (unserved country, an event in the wrong queue, an
//! inconsistent envelope, a confirmation for an unknown appointment) is
//! dead-lettered: logged at error level, counted in
//! `cita_messages_dead_lettered_total{queue}`, and skipped, so it never blocks
//! the events behind it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cita_core::booking::{BookingService, ConfirmError};
use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryError, CountryProcessor, CountryStore};
use cita_core::events::{ConfirmationPublisher, EventEnvelope, EventPublisher, Outbox};
use cita_core::routing::{CountryCode, CountryRouter};

use crate::pipeline::{RelayWorker, Step};

/// The queue name used in metrics for confirmations.
const CONFIRMATIONS: &str = "cita-confirmations";

fn consumed(queue: &str) {
    metrics::counter!("cita_messages_consumed_total", "queue" => queue.to_owned()).increment(1);
}

fn failed(queue: &str) {
    metrics::counter!("cita_messages_failed_total", "queue" => queue.to_owned()).increment(1);
}

fn dead_lettered(queue: &str) {
    metrics::counter!("cita_messages_dead_lettered_total", "queue" => queue.to_owned())
        .increment(1);
}

/// Applies confirmations to the primary store as they are published.
pub struct InlineConfirmations {
    handler: ConfirmationHandler,
}

impl InlineConfirmations {
    /// Confirmations go straight to `service`.
    pub fn new(service: Arc<BookingService>) -> Self {
        Self {
            handler: ConfirmationHandler::new(service),
        }
    }
}

#[async_trait]
impl ConfirmationPublisher for InlineConfirmations {
    async fn publish_confirmation(&self, confirmation: &EventEnvelope) -> anyhow::Result<()> {
        match self.handler.handle(confirmation).await {
            Ok(outcome) => {
                consumed(CONFIRMATIONS);
                tracing::debug!(appointment_id = %confirmation.appointment_id, ?outcome, "confirmation applied");
                Ok(())
            }
            Err(ConfirmError::NotFound) => {
                dead_lettered(CONFIRMATIONS);
                tracing::error!(
                    appointment_id = %confirmation.appointment_id,
                    "confirmation for an appointment the primary store does not have; dropped"
                );
                Ok(())
            }
            Err(ConfirmError::Unexpected(e)) => {
                failed(CONFIRMATIONS);
                Err(e.context("applying a confirmation"))
            }
        }
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
                let queue = router
                    .route(country)
                    .map_or_else(|_| format!("country-{country}"), |r| r.queue.clone());
                let processor = CountryProcessor::new(
                    country,
                    router.clone(),
                    store,
                    Arc::clone(&confirmations),
                    Arc::clone(&clock),
                );
                (country, (queue, processor))
            })
            .collect();
        Self { processors }
    }
}

#[async_trait]
impl EventPublisher for InlineDelivery {
    async fn publish(&self, event: &EventEnvelope) -> anyhow::Result<()> {
        if !event.event_type.is_country_work() {
            // External events (appointment.confirmed) have no subscriber in
            // embedded mode.
            return Ok(());
        }
        let Some((queue, processor)) = self.processors.get(&event.country_iso) else {
            dead_lettered("unrouted");
            tracing::error!(event_id = %event.event_id, country = %event.country_iso,
                "event for a country without a processor; dropped");
            return Ok(());
        };
        match processor.process(event).await {
            Ok(outcome) => {
                consumed(queue);
                tracing::debug!(event_id = %event.event_id, ?outcome, "country event processed");
                Ok(())
            }
            Err(CountryError::Unexpected(e)) => {
                failed(queue);
                Err(e.context(format!(
                    "processing event {} for {}",
                    event.event_id, event.country_iso
                )))
            }
            Err(permanent) => {
                dead_lettered(queue);
                tracing::error!(event_id = %event.event_id, error = %permanent,
                    "event can never be processed; dropped");
                Ok(())
            }
        }
    }
}

/// Embedded mode's pipeline: the outbox relay publishing to [`InlineDelivery`].
pub struct InlinePipeline {
    relay: RelayWorker,
    idle: Duration,
}

impl InlinePipeline {
    /// Relay → country processors → confirmations, all through `outbox`.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        service: Arc<BookingService>,
        router: &CountryRouter,
        stores: BTreeMap<CountryCode, Arc<dyn CountryStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let confirmations: Arc<dyn ConfirmationPublisher> =
            Arc::new(InlineConfirmations::new(service));
        let delivery = Arc::new(InlineDelivery::new(router, stores, confirmations, clock));
        Self {
            relay: RelayWorker::new(outbox, delivery),
            idle: Duration::from_millis(10),
        }
    }

    /// Relays until the outbox is empty (confirmations write new outbox
    /// entries, which are relayed too).
    ///
    /// # Errors
    /// A store failure; what was not delivered stays in the outbox.
    pub async fn drain(&self) -> anyhow::Result<()> {
        while self.relay.process_one().await? == Step::Processed {}
        Ok(())
    }

    /// Relays until `shutdown` resolves, finishing the batch in hand, then
    /// drains what is left once more (see [`RelayWorker::run`]).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        self.relay.run(shutdown, self.idle).await;
    }
}
