use super::{BookingService, MAX_ATTEMPTS};
use crate::booking::errors::CancelError;
use crate::booking::models::{Appointment, AppointmentStatus, CancelReason};
use crate::booking::ports::AppointmentWriteError;
use crate::clock::now_millis;
use crate::events::{EventEnvelope, EventType};
use crate::ids::{AppointmentId, Version};

/// Cancelling an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// Which appointment.
    pub id: AppointmentId,
    /// Why, if the caller says.
    pub reason: Option<CancelReason>,
    /// If given, the version the caller last saw (`If-Match`).
    pub expected: Option<Version>,
}

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelOutcome {
    /// The appointment now.
    pub appointment: Appointment,
    /// False when it was already cancelled (nothing changed, no event).
    pub changed: bool,
}

impl BookingService {
    /// Cancels an appointment: version + 1, one `appointment.cancelled` event,
    /// its time free at once. Cancelling a cancelled appointment answers it
    /// unchanged, whatever version the caller expected.
    ///
    /// # Errors
    /// `NotFound`, `VersionMismatch`, or `Unexpected`.
    pub async fn cancel(&self, request: CancelRequest) -> Result<CancelOutcome, CancelError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .appointments
                .get(request.id)
                .await?
                .ok_or(CancelError::NotFound)?;
            if current.status == AppointmentStatus::Cancelled {
                return Ok(CancelOutcome {
                    appointment: current,
                    changed: false,
                });
            }
            if let Some(expected) = request.expected
                && expected != current.version
            {
                return Err(CancelError::VersionMismatch {
                    current: current.version,
                });
            }
            let now = now_millis(self.clock.as_ref());
            let cancelled: Appointment = match current.cancel(request.reason.clone(), now) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let event = EventEnvelope::for_appointment(EventType::Cancelled, &cancelled, now);
            match self
                .appointments
                .update(&cancelled, current.version, Some(&event))
                .await
            {
                Ok(()) => {
                    return Ok(CancelOutcome {
                        appointment: cancelled,
                        changed: true,
                    });
                }
                Err(AppointmentWriteError::VersionConflict) => continue,
                Err(AppointmentWriteError::Unexpected(e)) => return Err(e.into()),
                Err(
                    e @ (AppointmentWriteError::SlotTaken | AppointmentWriteError::PatientBusy),
                ) => {
                    return Err(anyhow::anyhow!("store refused a cancellation: {e}").into());
                }
            }
        }
        Err(anyhow::anyhow!("appointment {} kept changing concurrently", request.id).into())
    }
}
