//! [`SnsEventPublisher`]: appointment events to the SNS topic.

use anyhow::Context as _;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sns::types::MessageAttributeValue;
use cita_core::events::{EventEnvelope, EventPublisher};

use super::resolve;
use super::topology::Topology;

/// The message attribute the country subscriptions filter on.
pub const COUNTRY_ATTRIBUTE: &str = "countryIso";
/// The message attribute carrying the event type.
pub const EVENT_TYPE_ATTRIBUTE: &str = "eventType";

/// Publishes each event's envelope JSON to the topic, with the `countryIso`
/// and `eventType` message attributes the country subscriptions filter on.
/// The outbox relay ([`cita_core::events::OutboxRelay`]) publishes through it.
#[derive(Debug, Clone)]
pub struct SnsEventPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsEventPublisher {
    /// A publisher to the topic with this ARN.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// A publisher to the topology's topic, looked up by name.
    ///
    /// # Errors
    /// When the topic does not exist or SNS cannot be reached.
    pub async fn from_topology(sdk: &SdkConfig, topology: &Topology) -> anyhow::Result<Self> {
        let client = aws_sdk_sns::Client::new(sdk);
        let arn = resolve::topic_arn(&client, &topology.topic()).await?;
        Ok(Self::new(client, arn))
    }

    /// The topic's ARN.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
}

fn string_attribute(value: &str) -> anyhow::Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .context("building an SNS message attribute")
}

#[async_trait]
impl EventPublisher for SnsEventPublisher {
    async fn publish(&self, event: &EventEnvelope) -> anyhow::Result<()> {
        let body = serde_json::to_string(event).context("serialising an event envelope")?;
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .message_attributes(
                COUNTRY_ATTRIBUTE,
                string_attribute(event.country_iso.as_str())?,
            )
            .message_attributes(
                EVENT_TYPE_ATTRIBUTE,
                string_attribute(event.event_type.as_str())?,
            )
            .send()
            .await
            .with_context(|| {
                format!(
                    "publishing event {} ({}) to SNS",
                    event.event_id, event.event_type
                )
            })?;
        tracing::debug!(
            event_id = %event.event_id,
            event_type = %event.event_type,
            country = %event.country_iso,
            message_id = out.message_id().unwrap_or_default(),
            "event published to SNS"
        );
        Ok(())
    }
}
