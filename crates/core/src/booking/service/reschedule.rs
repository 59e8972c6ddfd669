use jiff::Timestamp;

use super::{BookingService, MAX_ATTEMPTS, release};
use crate::booking::errors::RescheduleError;
use crate::booking::models::{Appointment, AppointmentStatus};
use crate::booking::ports::AppointmentWriteError;
use crate::clock::now_millis;
use crate::events::{EventEnvelope, EventType};
use crate::ids::{AppointmentId, Version};
use crate::slots::grid_slot_at;

/// Moving an appointment to a new slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescheduleRequest {
    /// Which appointment.
    pub id: AppointmentId,
    /// The new slot's start.
    pub start: Timestamp,
    /// If given, the version the caller last saw (`If-Match`).
    pub expected: Option<Version>,
}

/// What a reschedule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescheduleOutcome {
    /// The appointment now.
    pub appointment: Appointment,
    /// False when it already started there (nothing changed, no event).
    pub changed: bool,
}

impl BookingService {
    /// Moves an appointment to another slot of its provider: version + 1,
    /// back to pending, one `appointment.rescheduled` event. Its own current
    /// slot never blocks it. Checks, in order: exists, not cancelled, version,
    /// then the booking rules.
    ///
    /// # Errors
    /// Every [`RescheduleError`] variant, as named.
    pub async fn reschedule(
        &self,
        request: RescheduleRequest,
    ) -> Result<RescheduleOutcome, RescheduleError> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .appointments
                .get(request.id)
                .await?
                .ok_or(RescheduleError::NotFound)?;
            if current.status == AppointmentStatus::Cancelled {
                return Err(RescheduleError::Cancelled);
            }
            if let Some(expected) = request.expected
                && expected != current.version
            {
                return Err(RescheduleError::VersionMismatch {
                    current: current.version,
                });
            }
            if current.start == request.start {
                return Ok(RescheduleOutcome {
                    appointment: current,
                    changed: false,
                });
            }
            match self.try_reschedule(&current, request.start).await {
                Err(RescheduleError::Unexpected(e)) if e.downcast_ref::<Conflict>().is_some() => {
                    continue;
                }
                other => return other,
            }
        }
        Err(anyhow::anyhow!("appointment {} kept changing concurrently", request.id).into())
    }

    async fn try_reschedule(
        &self,
        current: &Appointment,
        start: Timestamp,
    ) -> Result<RescheduleOutcome, RescheduleError> {
        let provider = self
            .providers
            .get(&current.provider_id)
            .await?
            .ok_or(RescheduleError::ProviderNotFound)?;
        if !self.router.serves(current.country) {
            return Err(RescheduleError::CountryNotServed(current.country));
        }
        let schedule = &provider.schedule;
        let slot = grid_slot_at(schedule, start).ok_or(RescheduleError::SlotNotOffered)?;
        let instant = self.clock.now();
        let earliest = instant + schedule.min_notice.duration();
        if slot.start < earliest {
            return Err(RescheduleError::TooSoon { earliest });
        }
        let latest = instant + schedule.horizon.duration();
        if slot.start > latest {
            return Err(RescheduleError::TooFar { latest });
        }
        let lock = self.lock_slot(&provider.id, slot.start).await;
        let result = async {
            let buffer = schedule.buffer.duration();
            if self
                .provider_busy(&provider.id, slot.start, slot.end, buffer, Some(current))
                .await?
            {
                return Err(RescheduleError::SlotTaken);
            }
            let now = now_millis(self.clock.as_ref());
            let moved = current
                .reschedule(slot.start, slot.end, schedule.buffer, now)
                .map_err(|_| RescheduleError::Cancelled)?;
            let event = EventEnvelope::for_appointment(EventType::Rescheduled, &moved, now);
            match self
                .appointments
                .update(&moved, current.version, Some(&event))
                .await
            {
                Ok(()) => Ok(RescheduleOutcome {
                    appointment: moved,
                    changed: true,
                }),
                Err(AppointmentWriteError::SlotTaken) => Err(RescheduleError::SlotTaken),
                Err(AppointmentWriteError::PatientBusy) => Err(RescheduleError::PatientBusy),
                Err(AppointmentWriteError::VersionConflict) => {
                    Err(anyhow::Error::new(Conflict).into())
                }
                Err(AppointmentWriteError::Unexpected(e)) => Err(e.into()),
            }
        }
        .await;
        release(lock, self.observer.as_ref()).await;
        result
    }
}

/// A concurrent change won the write; the use case reloads and decides again.
#[derive(Debug, thiserror::Error)]
#[error("concurrent change")]
pub(super) struct Conflict;
