//! [`EventBridgeConfirmationPublisher`]: countries' confirmations to the bus.

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use cita_core::events::{ConfirmationPublisher, EventEnvelope, EventType};

use super::topology::{Topology, confirmation_source};

/// Puts each confirmation on the EventBridge bus: source
/// `cita.country.{cc}`, detail-type `appointment.confirmed`, detail = the
/// envelope JSON. The bus's rule delivers it to the confirmations queue.
#[derive(Debug, Clone)]
pub struct EventBridgeConfirmationPublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeConfirmationPublisher {
    /// A publisher to the bus with this name (or ARN).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    /// A publisher to the topology's bus.
    pub fn from_topology(sdk: &SdkConfig, topology: &Topology) -> Self {
        Self::new(aws_sdk_eventbridge::Client::new(sdk), topology.event_bus())
    }

    /// The bus it publishes to.
    pub fn bus(&self) -> &str {
        &self.bus
    }
}

#[async_trait]
impl ConfirmationPublisher for EventBridgeConfirmationPublisher {
    async fn publish_confirmation(&self, confirmation: &EventEnvelope) -> anyhow::Result<()> {
        // The rule matches this detail-type only: anything else would be
        // accepted by the bus and then silently go nowhere.
        if confirmation.event_type != EventType::Confirmed {
            bail!(
                "event {} is {}, not {}; it is not a confirmation",
                confirmation.event_id,
                confirmation.event_type,
                EventType::Confirmed
            );
        }
        let detail =
            serde_json::to_string(confirmation).context("serialising a confirmation envelope")?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(confirmation_source(confirmation.country_iso))
            .detail_type(confirmation.event_type.as_str())
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .with_context(|| {
                format!(
                    "putting confirmation {} on EventBridge bus {}",
                    confirmation.event_id, self.bus
                )
            })?;
        // PutEvents answers 200 even when an entry was refused; only the
        // count says so.
        if out.failed_entry_count() > 0 {
            let reasons: Vec<String> = out
                .entries()
                .iter()
                .filter(|e| e.error_code().is_some())
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.error_code().unwrap_or_default(),
                        e.error_message().unwrap_or_default()
                    )
                })
                .collect();
            bail!(
                "EventBridge refused confirmation {} on bus {}: {}",
                confirmation.event_id,
                self.bus,
                reasons.join("; ")
            );
        }
        tracing::debug!(
            event_id = %confirmation.event_id,
            appointment_id = %confirmation.appointment_id,
            version = %confirmation.version,
            country = %confirmation.country_iso,
            "confirmation put on EventBridge"
        );
        Ok(())
    }
}
