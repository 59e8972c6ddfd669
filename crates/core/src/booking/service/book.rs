use jiff::Timestamp;

use super::{BookingService, POLL, release};
use crate::booking::errors::BookError;
use crate::booking::models::{Appointment, AppointmentStatus, Notes};
use crate::booking::ports::{
    AppointmentWriteError, FieldError, Fingerprint, IdempotencyKey, IdempotencyState,
    IdempotentOutcome, Reservation,
};
use crate::clock::now_millis;
use crate::events::{AppointmentSnapshot, EventEnvelope, EventType};
use crate::ids::{AppointmentId, PatientId, ProviderId, Version};
use crate::routing::CountryCode;
use crate::slots::grid_slot_at;

/// A booking request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookRequest {
    /// Whose time.
    pub provider_id: ProviderId,
    /// Who comes.
    pub patient_id: PatientId,
    /// The slot's start.
    pub start: Timestamp,
    /// If given, must be the provider's country.
    pub country: Option<CountryCode>,
    /// Free text.
    pub notes: Option<Notes>,
    /// An idempotency key and the fingerprint of the request's content. The
    /// same key with the same fingerprint within the TTL replays the first
    /// answer; with another fingerprint it is refused.
    pub idempotency: Option<(IdempotencyKey, Fingerprint)>,
}

impl BookRequest {
    /// A fingerprint of the request's fields, for callers that have no raw
    /// body to fingerprint (the HTTP API fingerprints the JSON body instead).
    pub fn fingerprint(&self) -> Fingerprint {
        // Absent notes and empty notes are different requests: only present
        // notes get the `=` marker, so the two never share a fingerprint.
        Fingerprint(format!(
            "{}|{}|{}|{}|{}",
            self.provider_id,
            self.patient_id,
            self.start,
            self.country.map(|c| c.to_string()).unwrap_or_default(),
            self.notes
                .as_ref()
                .map(|n| format!("={}", n.as_str()))
                .unwrap_or_default()
        ))
    }
}

/// The answer to a booking: the appointment or why not, and whether it is a
/// replay of an earlier answer under the same idempotency key.
#[derive(Debug)]
pub struct BookReply {
    /// The appointment as booked, or the refusal.
    pub outcome: Result<AppointmentSnapshot, BookError>,
    /// Whether this answer was remembered rather than computed now.
    pub replayed: bool,
}

impl BookReply {
    fn fresh(outcome: Result<AppointmentSnapshot, BookError>) -> Self {
        Self {
            outcome,
            replayed: false,
        }
    }

    fn replay(outcome: &IdempotentOutcome) -> Self {
        Self {
            outcome: match outcome {
                IdempotentOutcome::Booked { appointment } => Ok(appointment.clone()),
                IdempotentOutcome::Refused { refusal } => Err(BookError::from_refusal(refusal)),
            },
            replayed: true,
        }
    }
}

impl BookingService {
    /// Books a slot. Checks, in this order: provider exists, country matches
    /// and is served, the start is a slot of the schedule's grid, notice,
    /// horizon, the provider is free (buffers included), the patient is free.
    /// With an idempotency key, the answer (success or refusal, never a
    /// failure) is remembered and replayed.
    pub async fn book(&self, request: BookRequest) -> BookReply {
        match request.idempotency.clone() {
            None => BookReply::fresh(self.book_once(&request).await),
            Some((key, fingerprint)) => {
                self.idempotent(&key, &fingerprint, self.book_once(&request))
                    .await
            }
        }
    }

    /// Answers a booking request that failed validation before it could be
    /// built, remembering the refusal under its idempotency key like any
    /// other refusal (the API replays 4xx answers too).
    pub async fn refuse_invalid_booking(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        errors: Vec<FieldError>,
    ) -> BookReply {
        self.idempotent(key, fingerprint, async { Err(BookError::Invalid(errors)) })
            .await
    }

    /// Runs `work` at most once per (key, fingerprint) within the TTL.
    async fn idempotent(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        work: impl Future<Output = Result<AppointmentSnapshot, BookError>>,
    ) -> BookReply {
        let mut waited = jiff::SignedDuration::ZERO;
        loop {
            let reservation = self
                .idempotency
                .reserve(
                    key,
                    fingerprint,
                    self.clock.now(),
                    self.settings.idempotency_ttl,
                    self.settings.idempotency_lease,
                )
                .await;
            match reservation {
                Err(e) => return BookReply::fresh(Err(e.into())),
                Ok(Reservation::Reserved) => break,
                Ok(Reservation::Existing(record)) if record.fingerprint != *fingerprint => {
                    return BookReply::fresh(Err(BookError::IdempotencyKeyReused));
                }
                Ok(Reservation::Existing(record)) => match record.state {
                    IdempotencyState::Done(outcome) => return BookReply::replay(&outcome),
                    IdempotencyState::InProgress if waited < self.settings.idempotency_wait => {
                        self.clock.sleep(POLL).await;
                        waited += POLL;
                    }
                    IdempotencyState::InProgress => {
                        return BookReply::fresh(Err(anyhow::anyhow!(
                            "a request with this idempotency key is still in progress"
                        )
                        .into()));
                    }
                },
            }
        }
        let outcome = work.await;
        let remembered = match &outcome {
            Ok(snapshot) => Some(IdempotentOutcome::Booked {
                appointment: snapshot.clone(),
            }),
            Err(e) => e
                .refusal()
                .map(|refusal| IdempotentOutcome::Refused { refusal }),
        };
        let stored = match remembered {
            Some(o) => self.idempotency.complete(key, &o).await,
            None => self.idempotency.release(key).await,
        };
        if let Err(e) = stored {
            // The answer stands even if the key could not be updated: the
            // reservation then lapses after its lease, and a retry runs again
            // and meets the store's own checks (slot taken / patient busy).
            self.observer.idempotency_unavailable(&e);
        }
        BookReply::fresh(outcome)
    }

    async fn book_once(&self, request: &BookRequest) -> Result<AppointmentSnapshot, BookError> {
        let provider = self
            .providers
            .get(&request.provider_id)
            .await?
            .ok_or(BookError::ProviderNotFound)?;
        if let Some(given) = request.country
            && given != provider.country
        {
            return Err(BookError::CountryMismatch {
                provider: provider.country,
                given,
            });
        }
        if !self.router.serves(provider.country) {
            return Err(BookError::CountryNotServed(provider.country));
        }
        let schedule = &provider.schedule;
        let slot = grid_slot_at(schedule, request.start).ok_or(BookError::SlotNotOffered)?;
        let instant = self.clock.now();
        let now = now_millis(self.clock.as_ref());
        let earliest = instant + schedule.min_notice.duration();
        if slot.start < earliest {
            return Err(BookError::TooSoon { earliest });
        }
        let latest = instant + schedule.horizon.duration();
        if slot.start > latest {
            return Err(BookError::TooFar { latest });
        }

        let lock = self.lock_slot(&provider.id, slot.start).await;
        let result = async {
            // The store refuses overlaps itself; this read adds the rule of
            // the provider's current buffer, unless the store applies it in
            // the insert too (one read fewer per booking).
            let buffer = schedule.buffer.duration();
            if !self.appointments.insert_checks_current_buffer()
                && self
                    .provider_busy(&provider.id, slot.start, slot.end, buffer, None)
                    .await?
            {
                return Err(BookError::SlotTaken);
            }
            let appointment = Appointment {
                id: AppointmentId::new(),
                provider_id: provider.id.clone(),
                patient_id: request.patient_id.clone(),
                country: provider.country,
                start: slot.start,
                end: slot.end,
                buffer: schedule.buffer,
                status: AppointmentStatus::Pending,
                version: Version::FIRST,
                notes: request.notes.clone(),
                cancel_reason: None,
                created_at: now,
                updated_at: now,
            };
            let event = EventEnvelope::for_appointment(EventType::Requested, &appointment, now);
            match self.appointments.insert(&appointment, &event).await {
                Ok(()) => Ok(AppointmentSnapshot::from(&appointment)),
                Err(AppointmentWriteError::SlotTaken) => Err(BookError::SlotTaken),
                Err(AppointmentWriteError::PatientBusy) => Err(BookError::PatientBusy),
                Err(AppointmentWriteError::VersionConflict) => {
                    Err(anyhow::anyhow!("the store reported a version conflict on insert").into())
                }
                Err(AppointmentWriteError::Unexpected(e)) => Err(e.into()),
            }
        }
        .await;
        release(lock, self.observer.as_ref()).await;
        result
    }
}
