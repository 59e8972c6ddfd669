use async_trait::async_trait;
use jiff::Timestamp;

use super::envelope::EventEnvelope;
use crate::ids::EventId;

/// Publishes appointment events to the topic the countries listen to.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync + 'static {
    /// Publishes one event, at least once.
    ///
    /// # Errors
    /// Any transport failure; the caller keeps the event and tries again.
    async fn publish(&self, event: &EventEnvelope) -> anyhow::Result<()>;
}

/// Tells the centre that a country recorded an appointment version.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ConfirmationPublisher: Send + Sync + 'static {
    /// Publishes one `appointment.confirmed` envelope, at least once.
    ///
    /// # Errors
    /// Any transport failure; the caller does not acknowledge its input, so
    /// the work is redone.
    async fn publish_confirmation(&self, confirmation: &EventEnvelope) -> anyhow::Result<()>;
}

/// An event written by the primary store in the same transaction as its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The event.
    pub event: EventEnvelope,
    /// When it was written.
    pub created_at: Timestamp,
}

/// How far behind the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxBacklog {
    /// Events written and not yet published.
    pub pending: u64,
    /// When the oldest of them was written.
    pub oldest: Option<Timestamp>,
}

/// The primary store's outbox, read by the relay.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` unpublished entries, oldest first (so per appointment in
    /// version order).
    ///
    /// # Errors
    /// Any store failure.
    async fn unpublished(&self, limit: usize) -> anyhow::Result<Vec<OutboxEntry>>;

    /// Marks entries as published; unknown or already-marked ids are ignored.
    ///
    /// # Errors
    /// Any store failure (the entries are then published again: at least once).
    async fn mark_published(&self, ids: &[EventId]) -> anyhow::Result<()>;

    /// Counts what is waiting.
    ///
    /// # Errors
    /// Any store failure.
    async fn backlog(&self) -> anyhow::Result<OutboxBacklog>;
}
