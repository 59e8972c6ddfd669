use super::{BookingService, MAX_ATTEMPTS};
use crate::booking::errors::ConfirmError;
use crate::booking::models::{Appointment, Confirmation};
use crate::booking::ports::AppointmentWriteError;
use crate::clock::now_millis;
use crate::events::{EventEnvelope, EventType};
use crate::ids::{AppointmentId, Version};

/// What a country's confirmation did to the primary record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// Pending at that version, now confirmed; the external
    /// `appointment.confirmed` event is in the outbox.
    Confirmed(Appointment),
    /// Already confirmed at that version (a repeated message).
    AlreadyConfirmed,
    /// The confirmation was for another version: a late or duplicated
    /// message never rolls state back.
    OtherVersion,
    /// The appointment is cancelled.
    Cancelled,
}

impl BookingService {
    /// Applies a country's confirmation of `version`: pending → confirmed only
    /// when versions match; the version itself does not change.
    ///
    /// # Errors
    /// `NotFound` when the primary store has no such appointment, or `Unexpected`.
    pub async fn apply_confirmation(
        &self,
        id: AppointmentId,
        version: Version,
    ) -> Result<ConfirmOutcome, ConfirmError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .appointments
                .get(id)
                .await?
                .ok_or(ConfirmError::NotFound)?;
            let now = now_millis(self.clock.as_ref());
            let confirmed = match current.confirm(version, now) {
                Confirmation::Applies(c) => c,
                Confirmation::AlreadyConfirmed => return Ok(ConfirmOutcome::AlreadyConfirmed),
                Confirmation::OtherVersion => return Ok(ConfirmOutcome::OtherVersion),
                Confirmation::Cancelled => return Ok(ConfirmOutcome::Cancelled),
            };
            let event = EventEnvelope::for_appointment(EventType::Confirmed, &confirmed, now);
            match self
                .appointments
                .update(&confirmed, current.version, Some(&event))
                .await
            {
                Ok(()) => return Ok(ConfirmOutcome::Confirmed(confirmed)),
                Err(AppointmentWriteError::VersionConflict) => continue,
                Err(AppointmentWriteError::Unexpected(e)) => return Err(e.into()),
                Err(
                    e @ (AppointmentWriteError::SlotTaken | AppointmentWriteError::PatientBusy),
                ) => {
                    return Err(anyhow::anyhow!("store refused a confirmation: {e}").into());
                }
            }
        }
        Err(anyhow::anyhow!("appointment {id} kept changing concurrently").into())
    }
}
