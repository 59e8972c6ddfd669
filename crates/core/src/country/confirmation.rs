use std::sync::Arc;

use crate::booking::{BookingService, ConfirmError, ConfirmOutcome};
use crate::events::{EventEnvelope, EventType};

/// Applies countries' confirmations to the primary store; the store's outbox
/// then carries the external `appointment.confirmed` event.
pub struct ConfirmationHandler {
    service: Arc<BookingService>,
}

impl ConfirmationHandler {
    /// A handler over the booking service.
    pub fn new(service: Arc<BookingService>) -> Self {
        Self { service }
    }

    /// Handles one confirmation message. Anything but `appointment.confirmed`
    /// is ignored (answered as [`ConfirmOutcome::OtherVersion`] would be: no change).
    ///
    /// # Errors
    /// [`ConfirmError`]: the caller must not acknowledge the message.
    pub async fn handle(
        &self,
        confirmation: &EventEnvelope,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        if confirmation.event_type != EventType::Confirmed {
            return Ok(ConfirmOutcome::OtherVersion);
        }
        self.service
            .apply_confirmation(confirmation.appointment_id, confirmation.version)
            .await
    }
}
