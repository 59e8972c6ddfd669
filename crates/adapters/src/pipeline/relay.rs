//! [`RelayWorker`]: the outbox relay as a [`Worker`].

use std::sync::Arc;

use async_trait::async_trait;
use cita_core::events::{EventPublisher, Outbox, OutboxRelay, RelayOutcome};

use super::runtime::{Shutdown, Step, Worker};

/// Entries the relay takes per step.
const BATCH: usize = 100;

/// Publishes the outbox, batch after batch; on shutdown it finishes the
/// batch in hand and flushes once more, so nothing committed before the
/// stop waits for the next start unless the publisher is down.
pub struct RelayWorker {
    relay: OutboxRelay,
}

impl RelayWorker {
    /// A relay over `outbox` publishing to `publisher`.
    pub fn new(outbox: Arc<dyn Outbox>, publisher: Arc<dyn EventPublisher>) -> Self {
        Self {
            relay: OutboxRelay::new(outbox, publisher, BATCH),
        }
    }

    /// Relays one batch.
    ///
    /// # Errors
    /// The outbox's or publisher's failure; the entries stay for the next step.
    pub async fn relay_once(&self) -> anyhow::Result<Step> {
        Ok(match self.relay.relay_once().await? {
            RelayOutcome::Published(_) => Step::Processed,
            RelayOutcome::Empty => Step::Empty,
        })
    }
}

#[async_trait]
impl Worker for RelayWorker {
    fn name(&self) -> &str {
        "outbox-relay"
    }

    async fn process_one(&self, _: &Shutdown) -> anyhow::Result<Step> {
        self.relay_once().await
    }

    async fn finish(&self) {
        loop {
            match self.relay_once().await {
                Ok(Step::Processed) => {}
                Ok(Step::Empty) => break,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"),
                        "final outbox flush failed; the events stay in the outbox");
                    break;
                }
            }
        }
    }
}
