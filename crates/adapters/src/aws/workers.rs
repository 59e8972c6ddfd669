//! The queue workers: a country queue feeding a [`CountryProcessor`], the
//! confirmations queue feeding a [`ConfirmationHandler`].

use std::future::Future;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use aws_config::SdkConfig;
use cita_core::country::{ConfirmationHandler, CountryProcessor};
use cita_core::events::EventEnvelope;
use cita_core::routing::CountryCode;
use serde::Deserialize;

use super::sqs::{SqsConsumer, SqsConsumerSettings, SqsMessageHandler};
use super::topology::Topology;
use crate::pipeline::Step;

/// Consumes one country's queue: each body is an event envelope (the
/// subscription delivers SNS messages raw), recorded in the country's store
/// and confirmed by the [`CountryProcessor`].
pub struct SqsCountryWorker {
    consumer: SqsConsumer,
    handler: CountryHandler,
}

impl SqsCountryWorker {
    /// A worker feeding `consumer`'s queue to `processor`.
    pub fn new(consumer: SqsConsumer, processor: CountryProcessor) -> Self {
        Self {
            consumer,
            handler: CountryHandler { processor },
        }
    }

    /// A worker on the topology's queue for `processor`'s country.
    ///
    /// # Errors
    /// When the topology has no queue for that country, or the queue cannot
    /// be found.
    pub async fn from_topology(
        sdk: &SdkConfig,
        topology: &Topology,
        processor: CountryProcessor,
        settings: SqsConsumerSettings,
    ) -> anyhow::Result<Self> {
        let country = processor.country();
        if !topology.serves(country) {
            return Err(anyhow!(
                "the topology has no queue for country {country} (it serves {:?})",
                topology.countries()
            ));
        }
        let consumer =
            SqsConsumer::connect(sdk, &topology.country_queue(country), settings).await?;
        Ok(Self::new(consumer, processor))
    }

    /// The country it processes.
    pub fn country(&self) -> CountryCode {
        self.handler.processor.country()
    }

    /// The queue it consumes.
    pub fn queue_name(&self) -> &str {
        self.consumer.queue_name()
    }

    /// Receives and handles one batch.
    ///
    /// # Errors
    /// When receiving fails; see [`SqsConsumer::process_one`].
    pub async fn process_one(&self) -> anyhow::Result<Step> {
        self.consumer.process_one(&self.handler).await
    }

    /// Runs until `shutdown` resolves; see [`SqsConsumer::run`].
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        self.consumer.run(&self.handler, shutdown).await;
    }
}

struct CountryHandler {
    processor: CountryProcessor,
}

#[async_trait]
impl SqsMessageHandler for CountryHandler {
    async fn handle(&self, body: &str) -> anyhow::Result<()> {
        let event: EventEnvelope =
            serde_json::from_str(body).context("the message body is not an event envelope")?;
        let outcome = self.processor.process(&event).await.with_context(|| {
            format!(
                "processing event {} ({}) of appointment {} for {}",
                event.event_id, event.event_type, event.appointment_id, event.country_iso
            )
        })?;
        tracing::debug!(
            country = %self.processor.country(),
            event_id = %event.event_id,
            ?outcome,
            "country event processed"
        );
        Ok(())
    }
}

/// Consumes the confirmations queue: each body is the EventBridge event the
/// rule delivered, whose `detail` is the confirmation envelope; the
/// [`ConfirmationHandler`] applies it to the primary store.
pub struct SqsConfirmationWorker {
    consumer: SqsConsumer,
    handler: ConfirmationsHandler,
}

impl SqsConfirmationWorker {
    /// A worker feeding `consumer`'s queue to `handler`.
    pub fn new(consumer: SqsConsumer, handler: ConfirmationHandler) -> Self {
        Self {
            consumer,
            handler: ConfirmationsHandler { handler },
        }
    }

    /// A worker on the topology's confirmations queue.
    ///
    /// # Errors
    /// When the queue cannot be found.
    pub async fn from_topology(
        sdk: &SdkConfig,
        topology: &Topology,
        handler: ConfirmationHandler,
        settings: SqsConsumerSettings,
    ) -> anyhow::Result<Self> {
        let consumer = SqsConsumer::connect(sdk, &topology.confirmations_queue(), settings).await?;
        Ok(Self::new(consumer, handler))
    }

    /// The queue it consumes.
    pub fn queue_name(&self) -> &str {
        self.consumer.queue_name()
    }

    /// Receives and handles one batch.
    ///
    /// # Errors
    /// When receiving fails; see [`SqsConsumer::process_one`].
    pub async fn process_one(&self) -> anyhow::Result<Step> {
        self.consumer.process_one(&self.handler).await
    }

    /// Runs until `shutdown` resolves; see [`SqsConsumer::run`].
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        self.consumer.run(&self.handler, shutdown).await;
    }
}

/// The part of an EventBridge event this worker reads: the envelope the
/// country put as `detail`. The other fields (`source`, `time`, …) vary
/// between AWS and emulators and are not needed.
#[derive(Deserialize)]
struct BusEvent {
    detail: EventEnvelope,
}

/// Unwraps the envelope from the body of a message the EventBridge rule
/// delivered to the confirmations queue.
///
/// # Errors
/// When the body is not an EventBridge event whose `detail` is an envelope.
pub fn confirmation_from_bus_event(body: &str) -> anyhow::Result<EventEnvelope> {
    let event: BusEvent = serde_json::from_str(body)
        .context("the message body is not an EventBridge event with an envelope as detail")?;
    Ok(event.detail)
}

struct ConfirmationsHandler {
    handler: ConfirmationHandler,
}

#[async_trait]
impl SqsMessageHandler for ConfirmationsHandler {
    async fn handle(&self, body: &str) -> anyhow::Result<()> {
        let confirmation = confirmation_from_bus_event(body)?;
        let outcome = self.handler.handle(&confirmation).await.with_context(|| {
            format!(
                "applying confirmation {} of appointment {} version {}",
                confirmation.event_id, confirmation.appointment_id, confirmation.version
            )
        })?;
        tracing::debug!(
            appointment_id = %confirmation.appointment_id,
            version = %confirmation.version,
            ?outcome,
            "confirmation applied"
        );
        Ok(())
    }
}
