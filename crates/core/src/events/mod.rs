//! Events: the envelope every transport carries, the publishing ports, the
//! outbox and the relay that empties it.

mod envelope;
mod ports;
mod relay;

pub use envelope::{AppointmentSnapshot, EventEnvelope, EventType, UnknownEventType, millis, utc};
pub use ports::{ConfirmationPublisher, EventPublisher, Outbox, OutboxBacklog, OutboxEntry};
#[cfg(test)]
pub use ports::{MockConfirmationPublisher, MockEventPublisher, MockOutbox};
pub use relay::{OutboxRelay, RelayOutcome};
