use std::sync::Arc;

use super::ports::{EventPublisher, Outbox};

/// What one relay step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayOutcome {
    /// This many events were published and marked.
    Published(usize),
    /// The outbox was empty.
    Empty,
}

/// Moves events from the primary store's outbox to the [`EventPublisher`]:
/// publish, then mark. A crash between the two publishes again (at least once);
/// nothing is ever lost.
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    publisher: Arc<dyn EventPublisher>,
    batch: usize,
}

impl OutboxRelay {
    /// A relay taking up to `batch` entries per step.
    pub fn new(outbox: Arc<dyn Outbox>, publisher: Arc<dyn EventPublisher>, batch: usize) -> Self {
        Self {
            outbox,
            publisher,
            batch: batch.max(1),
        }
    }

    /// Publishes one batch, oldest first. On the first failure it marks what
    /// went out and stops, so later events of the same appointment never
    /// overtake an earlier one.
    ///
    /// # Errors
    /// The outbox's or the publisher's failure; entries not marked stay for
    /// the next step.
    pub async fn relay_once(&self) -> anyhow::Result<RelayOutcome> {
        let entries = self.outbox.unpublished(self.batch).await?;
        if entries.is_empty() {
            return Ok(RelayOutcome::Empty);
        }
        let mut done = Vec::with_capacity(entries.len());
        let mut failure = None;
        for entry in &entries {
            match self.publisher.publish(&entry.event).await {
                Ok(()) => done.push(entry.event.event_id),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !done.is_empty() {
            self.outbox.mark_published(&done).await?;
        }
        match failure {
            Some(e) => Err(e.context("publishing an outbox event")),
            None => Ok(RelayOutcome::Published(done.len())),
        }
    }

    /// Relays until the outbox is empty or a step fails.
    ///
    /// # Errors
    /// As [`OutboxRelay::relay_once`].
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        while let RelayOutcome::Published(n) = self.relay_once().await? {
            total += n;
        }
        Ok(total)
    }
}
