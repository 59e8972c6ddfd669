//! Ports the booking use cases need besides [`crate::providers::ProviderStore`].

use std::fmt;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::models::{Appointment, AppointmentStatus};
use crate::events::{AppointmentSnapshot, EventEnvelope};
use crate::ids::{AppointmentId, PatientId, ProviderId, Version};

/// An appointment write was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppointmentWriteError {
    /// An active appointment of the same provider overlaps (buffers included).
    #[error("the provider is already booked at that time")]
    SlotTaken,
    /// An active appointment of the same patient overlaps.
    #[error("the patient already has an appointment at that time")]
    PatientBusy,
    /// The stored version is not the expected one (or the appointment is gone).
    #[error("the appointment changed concurrently")]
    VersionConflict,
    /// The store failed; nothing was written.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Which appointments a listing shows. At least one of `patient`/`provider`
/// is set (see [`AppointmentQuery::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentQuery {
    /// Only this patient's.
    pub patient: Option<PatientId>,
    /// Only this provider's.
    pub provider: Option<ProviderId>,
    /// Only those starting at or after this instant.
    pub from: Option<Timestamp>,
    /// Only those starting before this instant.
    pub until: Option<Timestamp>,
    /// Only those in this status.
    pub status: Option<AppointmentStatus>,
    /// Only those after this position in (start, id) order.
    pub after: Option<(Timestamp, AppointmentId)>,
    /// At most this many.
    pub limit: usize,
}

/// A listing named neither a patient nor a provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("either patientId or providerId is required")]
pub struct MissingOwner;

impl AppointmentQuery {
    /// A query for a patient's and/or a provider's appointments, unbounded otherwise.
    ///
    /// # Errors
    /// [`MissingOwner`] when neither is given.
    pub fn new(
        patient: Option<PatientId>,
        provider: Option<ProviderId>,
        limit: usize,
    ) -> Result<Self, MissingOwner> {
        if patient.is_none() && provider.is_none() {
            return Err(MissingOwner);
        }
        Ok(Self {
            patient,
            provider,
            from: None,
            until: None,
            status: None,
            after: None,
            limit,
        })
    }

    /// Whether an appointment belongs in the listing (ignoring `limit`).
    pub fn matches(&self, a: &Appointment) -> bool {
        self.patient.as_ref().is_none_or(|p| *p == a.patient_id)
            && self.provider.as_ref().is_none_or(|p| *p == a.provider_id)
            && self.from.is_none_or(|f| a.start >= f)
            && self.until.is_none_or(|u| a.start < u)
            && self.status.is_none_or(|s| s == a.status)
            && self.after.is_none_or(|pos| (a.start, a.id) > pos)
    }
}

/// The primary store of appointments. It is the source of truth for
/// overlaps: whatever the callers checked before, the store refuses a write
/// that would leave two overlapping active appointments of one provider
/// (`[start, end + buffer)` of each) or of one patient (`[start, end)`), and it
/// writes the change's event to its outbox in the same transaction.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AppointmentStore: Send + Sync + 'static {
    /// Inserts a new appointment and its event.
    ///
    /// # Errors
    /// [`AppointmentWriteError::SlotTaken`] when an active appointment of the
    /// provider [blocks the booking](Appointment::blocks_booking) — their
    /// holds overlap, or the new appointment's buffer (the provider's current
    /// one) put after the existing one's end reaches the new start (checked
    /// first), [`AppointmentWriteError::PatientBusy`] on a patient overlap,
    /// [`AppointmentWriteError::Unexpected`] for store failures. On any error
    /// neither the appointment nor the event is written.
    async fn insert(
        &self,
        appointment: &Appointment,
        event: &EventEnvelope,
    ) -> Result<(), AppointmentWriteError>;

    /// Replaces an appointment whose stored version is `expected`, with its
    /// event if there is one. An active appointment is checked for overlaps
    /// against every other active appointment (never against itself).
    ///
    /// # Errors
    /// [`AppointmentWriteError::VersionConflict`] when the stored version is
    /// not `expected` or the appointment does not exist; `SlotTaken`,
    /// `PatientBusy` and `Unexpected` as for [`AppointmentStore::insert`].
    /// On any error nothing is written.
    async fn update<'a>(
        &self,
        appointment: &Appointment,
        expected: Version,
        event: Option<&'a EventEnvelope>,
    ) -> Result<(), AppointmentWriteError>;

    /// Reads one appointment.
    ///
    /// # Errors
    /// Store failures (never reported as `Ok(None)`).
    async fn get(&self, id: AppointmentId) -> anyhow::Result<Option<Appointment>>;

    /// Appointments matching the query, ordered by start then id, at most `query.limit`.
    ///
    /// # Errors
    /// Store failures.
    async fn list(&self, query: &AppointmentQuery) -> anyhow::Result<Vec<Appointment>>;

    /// A provider's active appointments whose `[start, end)` intersects
    /// `[from, until)`, ordered by start. Cost must follow the range, not the
    /// provider's history (appointments last at most
    /// [`crate::slots::MAX_APPOINTMENT`], so an index on start suffices).
    ///
    /// # Errors
    /// Store failures.
    async fn active_in_range(
        &self,
        provider: &ProviderId,
        from: Timestamp,
        until: Timestamp,
    ) -> anyhow::Result<Vec<Appointment>>;
}

/// A caller's `Idempotency-Key`: 1–255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

/// Why an idempotency key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 255 printable ASCII characters")]
pub struct IdempotencyKeyError;

impl IdempotencyKey {
    /// Checks length and that it is printable ASCII (it travels in a header).
    ///
    /// # Errors
    /// [`IdempotencyKeyError`].
    pub fn parse(s: &str) -> Result<Self, IdempotencyKeyError> {
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(IdempotencyKeyError);
        }
        Ok(Self(s.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A digest of a request's content: two requests with the same key are the
/// same request when their fingerprints are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub String);

/// A field-level validation message, as the API lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where: a JSON path such as `start` or `weeklyHours.monday[1]`, or a header name.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

impl FieldError {
    /// A message for a field.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A booking refusal as remembered for replay: the business errors of a
/// booking (never a failure of Cita's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum BookRefusal {
    /// See [`super::BookError::Invalid`].
    Invalid {
        /// The field errors.
        errors: Vec<FieldError>,
    },
    /// See [`super::BookError::ProviderNotFound`].
    ProviderNotFound,
    /// See [`super::BookError::CountryNotServed`].
    CountryNotServed {
        /// The country.
        country: String,
    },
    /// See [`super::BookError::CountryMismatch`].
    CountryMismatch {
        /// The provider's country.
        provider: String,
        /// The country given.
        given: String,
    },
    /// See [`super::BookError::SlotNotOffered`].
    SlotNotOffered,
    /// See [`super::BookError::TooSoon`].
    TooSoon {
        /// The earliest start allowed at the time.
        #[serde(with = "crate::events::utc")]
        earliest: Timestamp,
    },
    /// See [`super::BookError::TooFar`].
    TooFar {
        /// The latest start allowed at the time.
        #[serde(with = "crate::events::utc")]
        latest: Timestamp,
    },
    /// See [`super::BookError::SlotTaken`].
    SlotTaken,
    /// See [`super::BookError::PatientBusy`].
    PatientBusy,
}

/// The answer remembered under a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IdempotentOutcome {
    /// The booking succeeded; the appointment as it was answered.
    Booked {
        /// The appointment at booking.
        appointment: AppointmentSnapshot,
    },
    /// The booking was refused.
    Refused {
        /// Why.
        refusal: BookRefusal,
    },
}

/// Where a key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// A request holds the key and has not answered yet.
    InProgress,
    /// The answer to replay.
    Done(IdempotentOutcome),
}

/// What the store knows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The key.
    pub key: IdempotencyKey,
    /// The first request's fingerprint.
    pub fingerprint: Fingerprint,
    /// In progress or answered.
    pub state: IdempotencyState,
    /// When the key was first used.
    pub created_at: Timestamp,
    /// The appointment the reserving request books, if it books one. Its
    /// id is chosen before the key is reserved and stored with it, so a
    /// retry after a crash between the booking's commit and its answer
    /// being stored finds the appointment its first attempt made.
    pub appointment: Option<AppointmentId>,
}

impl IdempotencyRecord {
    /// Whether the record no longer counts: answered `ttl` or more before
    /// `now`, or reserved `lease` or more before `now` without an answer.
    /// Every [`IdempotencyStore`] applies this rule (the contract suite pins
    /// both edges); a store comparing at millisecond precision passes `now`
    /// floored to its precision.
    pub fn is_expired(&self, now: Timestamp, ttl: SignedDuration, lease: SignedDuration) -> bool {
        let age = now.duration_since(self.created_at);
        match self.state {
            IdempotencyState::InProgress => age >= lease,
            IdempotencyState::Done(_) => age >= ttl,
        }
    }

    /// The appointment an abandoned attempt of the same request (same
    /// `fingerprint`, never answered) may have booked: the one a retry must
    /// look for before booking again.
    pub fn unanswered_booking(&self, fingerprint: &Fingerprint) -> Option<AppointmentId> {
        match self.state {
            IdempotencyState::InProgress if self.fingerprint == *fingerprint => self.appointment,
            _ => None,
        }
    }
}

/// The result of trying to reserve a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The key was free (or expired) and is now held by the caller.
    Reserved {
        /// The expired record the reservation replaced, as it was, if any.
        replaced: Option<Box<IdempotencyRecord>>,
    },
    /// The key is in use; here is what is known of it.
    Existing(Box<IdempotencyRecord>),
}

/// Remembers booking answers by `Idempotency-Key` for a while (24 h in Cita).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Reserves `key` for a request with `fingerprint` that will book
    /// `appointment` (if it books one), atomically: of many concurrent
    /// callers exactly one gets [`Reservation::Reserved`]. A record that
    /// [`is_expired`](IdempotencyRecord::is_expired) counts as absent and is
    /// replaced; the reservation then returns it as it was (`replaced`).
    ///
    /// # Errors
    /// Store failures.
    async fn reserve(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        appointment: Option<AppointmentId>,
        now: Timestamp,
        ttl: SignedDuration,
        lease: SignedDuration,
    ) -> anyhow::Result<Reservation>;

    /// Stores the answer for a key the caller reserved.
    ///
    /// # Errors
    /// Store failures.
    async fn complete(
        &self,
        key: &IdempotencyKey,
        outcome: &IdempotentOutcome,
    ) -> anyhow::Result<()>;

    /// Forgets a reservation whose request failed unexpectedly (5xx answers
    /// are not remembered), so a retry runs again.
    ///
    /// # Errors
    /// Store failures.
    async fn release(&self, key: &IdempotencyKey) -> anyhow::Result<()>;
}

/// What a [`SlotLock`] locks: one provider's slot start.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockKey {
    /// The provider.
    pub provider: ProviderId,
    /// The slot's start.
    pub start: Timestamp,
}

impl LockKey {
    /// A stable text form: `{provider}:{unix seconds}`.
    pub fn as_string(&self) -> String {
        format!("{}:{}", self.provider, self.start.as_second())
    }
}

/// A lock holder's secret: only the holder's token releases the lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockToken(pub String);

impl LockToken {
    /// A fresh random token.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

/// A short lock on (provider, slot) that spares the store pointless racing
/// writes. Never the source of truth: when it fails or is lost, the store's
/// own refusal of overlaps still prevents double booking.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SlotLock: Send + Sync + 'static {
    /// Takes the lock for `ttl` if nobody holds it.
    ///
    /// # Errors
    /// The lock service is unreachable or failed; the caller goes on without it.
    async fn try_acquire(
        &self,
        key: &LockKey,
        token: &LockToken,
        ttl: SignedDuration,
    ) -> anyhow::Result<bool>;

    /// Releases the lock if `token` still holds it (compare-and-delete).
    ///
    /// # Errors
    /// The lock service failed; the lock then expires by its ttl.
    async fn release(&self, key: &LockKey, token: &LockToken) -> anyhow::Result<()>;
}
