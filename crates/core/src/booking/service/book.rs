use jiff::{SignedDuration, Timestamp};

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

/// Whether a booking's answer was worked out for this request or is the one
/// remembered under its idempotency key (the API then says
/// `idempotent-replayed: true`). Refusals are replayed as well as bookings,
/// so the flag stands beside the whole [`Result`], not inside its success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Worked out now.
    Fresh,
    /// The answer of an earlier request with the same key and body.
    Replayed,
}

/// The appointment as booked or the refusal, and whether it is a replay.
type BookReply = (Result<AppointmentSnapshot, BookError>, Replay);

/// The remembered answer, as a replay.
fn replay(outcome: &IdempotentOutcome) -> BookReply {
    let answer = match outcome {
        IdempotentOutcome::Booked { appointment } => Ok(appointment.clone()),
        IdempotentOutcome::Refused { refusal } => Err(BookError::from_refusal(refusal)),
    };
    (answer, Replay::Replayed)
}

impl BookingService {
    /// Books a slot. Checks, in this order: provider exists, country matches
    /// and is served, the start is a slot of the schedule's grid, notice,
    /// horizon, the provider is free (buffers included), the patient is free.
    /// With an idempotency key, the answer (success or refusal, never a
    /// failure) is remembered and replayed.
    ///
    /// Returns the appointment as booked (the API's body) or why not, and
    /// beside it whether this answer is a [`Replay`].
    pub async fn book(
        &self,
        request: BookRequest,
    ) -> (Result<AppointmentSnapshot, BookError>, Replay) {
        // The id is chosen before the key is reserved and stored with it: a
        // retry of a request whose answer was lost (a crash between the
        // booking's commit and the key's completion) finds the appointment.
        let id = AppointmentId::new();
        match request.idempotency.clone() {
            None => (self.book_once(&request, id).await, Replay::Fresh),
            Some((key, fingerprint)) => {
                self.idempotent(&key, &fingerprint, Some(id), self.book_once(&request, id))
                    .await
            }
        }
    }

    /// Answers a booking request that failed validation before it could be
    /// built, remembering the refusal under its idempotency key like any
    /// other refusal (the API replays 4xx answers too). Answers like
    /// [`Self::book`]: the refusal ([`BookError::Invalid`], or whatever was
    /// remembered under the key) and whether it is a [`Replay`].
    pub async fn refuse_invalid_booking(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        errors: Vec<FieldError>,
    ) -> (Result<AppointmentSnapshot, BookError>, Replay) {
        self.idempotent(key, fingerprint, None, async {
            Err(BookError::Invalid(errors))
        })
        .await
    }

    /// Runs `work` (which books `appointment`, if given) at most once per
    /// (key, fingerprint) within the TTL.
    async fn idempotent(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        appointment: Option<AppointmentId>,
        work: impl Future<Output = Result<AppointmentSnapshot, BookError>>,
    ) -> BookReply {
        let mut waited = SignedDuration::ZERO;
        loop {
            let reservation = self
                .idempotency
                .reserve(
                    key,
                    fingerprint,
                    appointment,
                    self.clock.now(),
                    self.settings.idempotency_ttl,
                    self.settings.idempotency_lease,
                )
                .await;
            let unanswered = match reservation {
                Err(e) => return (Err(e.into()), Replay::Fresh),
                Ok(Reservation::Reserved { replaced }) => {
                    // An attempt of this request that was never answered
                    // may have booked before it was abandoned.
                    match replaced.and_then(|r| r.unanswered_booking(fingerprint)) {
                        None => break,
                        Some(id) => match self.booked_earlier(key, id).await {
                            Ok(Some(reply)) => return reply,
                            Ok(None) => break,
                            Err(e) => return self.failed(key, e).await,
                        },
                    }
                }
                Ok(Reservation::Existing(record)) if record.fingerprint != *fingerprint => {
                    return (Err(BookError::IdempotencyKeyReused), Replay::Fresh);
                }
                Ok(Reservation::Existing(record)) => match record.state {
                    IdempotencyState::Done(outcome) => return replay(&outcome),
                    IdempotencyState::InProgress => record.appointment,
                },
            };
            // The same request is in progress, or was and died unanswered:
            // its appointment, if it exists, is the answer. Looked for when
            // the record is first seen (a retry after a crash) and once more
            // before giving up; in between, a live first attempt answers
            // through the record itself.
            let giving_up = waited >= self.settings.idempotency_wait;
            if let Some(id) = unanswered.filter(|_| waited == SignedDuration::ZERO || giving_up) {
                match self.booked_earlier(key, id).await {
                    Ok(Some(reply)) => return reply,
                    Ok(None) => {}
                    Err(e) => return (Err(e.into()), Replay::Fresh),
                }
            }
            if giving_up {
                return (
                    Err(anyhow::anyhow!(
                        "a request with this idempotency key is still in progress"
                    )
                    .into()),
                    Replay::Fresh,
                );
            }
            self.clock.sleep(POLL).await;
            waited += POLL;
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
            // reservation then lapses after its lease, and a retry finds the
            // appointment booked under the key (or books, if there is none).
            self.observer.idempotency_unavailable(&e);
        }
        (outcome, Replay::Fresh)
    }

    /// If an earlier attempt under `key` booked appointment `id`, remembers
    /// and replays that booking.
    async fn booked_earlier(
        &self,
        key: &IdempotencyKey,
        id: AppointmentId,
    ) -> anyhow::Result<Option<BookReply>> {
        let Some(appointment) = self.appointments.get(id).await? else {
            return Ok(None);
        };
        let outcome = IdempotentOutcome::Booked {
            appointment: AppointmentSnapshot::from(&appointment),
        };
        if let Err(e) = self.idempotency.complete(key, &outcome).await {
            self.observer.idempotency_unavailable(&e);
        }
        Ok(Some(replay(&outcome)))
    }

    /// Answers a failure while this request holds `key`, releasing it so a
    /// retry runs again.
    async fn failed(&self, key: &IdempotencyKey, error: anyhow::Error) -> BookReply {
        if let Err(e) = self.idempotency.release(key).await {
            self.observer.idempotency_unavailable(&e);
        }
        (Err(error.into()), Replay::Fresh)
    }

    async fn book_once(
        &self,
        request: &BookRequest,
        id: AppointmentId,
    ) -> Result<AppointmentSnapshot, BookError> {
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
            // The store refuses every overlap itself, the provider's current
            // buffer after earlier appointments included
            // (`Appointment::blocks_booking`): nothing to read first.
            let appointment = Appointment {
                id,
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
