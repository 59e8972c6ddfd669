//! The SQS workers: a country queue feeding a [`CountryProcessor`], the
//! confirmations queue feeding a [`ConfirmationHandler`], each an
//! [`InboxWorker`] over an [`SqsInbox`].

use anyhow::{Context as _, anyhow};
use aws_config::SdkConfig;
use cita_core::country::{ConfirmationHandler, CountryProcessor};
use cita_core::events::EventEnvelope;
use serde::Deserialize;

use super::sqs::{Body, SqsConsumerSettings, SqsInbox};
use super::topology::Topology;
use crate::pipeline::InboxWorker;

/// Consumes one country's queue: each body is an event envelope, recorded
/// in the country's store and confirmed by the [`CountryProcessor`].
pub type SqsCountryWorker = InboxWorker<SqsInbox, CountryProcessor>;

/// Consumes the confirmations queue: each body is the EventBridge event the
/// rule delivered, whose `detail` is the confirmation envelope.
pub type SqsConfirmationWorker = InboxWorker<SqsInbox, ConfirmationHandler>;

/// A worker on the topology's queue for `processor`'s country.
///
/// # Errors
/// When the topology has no queue for that country, or the queue or its
/// dead-letter queue cannot be found.
pub async fn country_worker(
    sdk: &SdkConfig,
    topology: &Topology,
    processor: CountryProcessor,
    settings: SqsConsumerSettings,
) -> anyhow::Result<SqsCountryWorker> {
    let country = processor.country();
    if !topology.serves(country) {
        return Err(anyhow!(
            "the topology has no queue for country {country} (it serves {:?})",
            topology.countries()
        ));
    }
    let inbox = SqsInbox::connect(
        sdk,
        &topology.country_queue(country),
        &topology.country_dlq(country),
        Body::Envelope,
        settings,
    )
    .await?;
    Ok(InboxWorker::new(inbox, processor))
}

/// A worker on the topology's confirmations queue.
///
/// # Errors
/// When the queue or its dead-letter queue cannot be found.
pub async fn confirmation_worker(
    sdk: &SdkConfig,
    topology: &Topology,
    handler: ConfirmationHandler,
    settings: SqsConsumerSettings,
) -> anyhow::Result<SqsConfirmationWorker> {
    let inbox = SqsInbox::connect(
        sdk,
        &topology.confirmations_queue(),
        &topology.confirmations_dlq(),
        Body::BusEvent,
        settings,
    )
    .await?;
    Ok(InboxWorker::new(inbox, handler))
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
