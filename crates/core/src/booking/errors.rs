//! One error enum per use case: business variants plus `Unexpected`.

use jiff::Timestamp;

use super::ports::{BookRefusal, FieldError};
use crate::ids::Version;
use crate::routing::CountryCode;

/// Setting a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum SetProviderError {
    /// The provider's country is not served.
    #[error("country {0} is not served")]
    CountryNotServed(CountryCode),
    /// A port failed; nothing was written.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Reading a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum GetProviderError {
    /// No such provider.
    #[error("provider not found")]
    NotFound,
    /// A port failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// An availability question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    /// No such provider.
    #[error("provider not found")]
    ProviderNotFound,
    /// `to` is before `from`.
    #[error("`to` must not be before `from`")]
    ToBeforeFrom,
    /// More dates than allowed.
    #[error("at most {max} dates may be asked at once")]
    RangeTooLarge {
        /// The most dates one question may cover.
        max: usize,
    },
    /// A port failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A booking was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// The request failed validation before it could be built (only produced
    /// by [`super::BookingService::refuse_invalid_booking`]).
    #[error("the request is invalid")]
    Invalid(Vec<FieldError>),
    /// No such provider.
    #[error("provider not found")]
    ProviderNotFound,
    /// The provider's country is not served.
    #[error("country {0} is not served")]
    CountryNotServed(CountryCode),
    /// The country given is not the provider's.
    #[error("the provider works in {provider}, not {given}")]
    CountryMismatch {
        /// The provider's country.
        provider: CountryCode,
        /// The country given.
        given: CountryCode,
    },
    /// The start is not a slot start of the provider's schedule.
    #[error("the start is not a slot of the provider's schedule")]
    SlotNotOffered,
    /// The start is closer than the provider's minimum notice.
    #[error("the earliest start that can be booked now is {earliest}")]
    TooSoon {
        /// `now + min_notice`.
        earliest: Timestamp,
    },
    /// The start is beyond the provider's horizon.
    #[error("the latest start that can be booked now is {latest}")]
    TooFar {
        /// `now + horizon`.
        latest: Timestamp,
    },
    /// The provider is booked at that time (buffers included).
    #[error("the slot is taken")]
    SlotTaken,
    /// The patient has another appointment at that time.
    #[error("the patient already has an appointment at that time")]
    PatientBusy,
    /// The idempotency key was used with a different request.
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// A port failed; nothing was written.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl BookError {
    /// The business refusal this error is, to remember for replays; `None`
    /// for failures (never remembered) and for a reused key.
    pub fn refusal(&self) -> Option<BookRefusal> {
        Some(match self {
            Self::Invalid(errors) => BookRefusal::Invalid {
                errors: errors.clone(),
            },
            Self::ProviderNotFound => BookRefusal::ProviderNotFound,
            Self::CountryNotServed(c) => BookRefusal::CountryNotServed {
                country: c.to_string(),
            },
            Self::CountryMismatch { provider, given } => BookRefusal::CountryMismatch {
                provider: provider.to_string(),
                given: given.to_string(),
            },
            Self::SlotNotOffered => BookRefusal::SlotNotOffered,
            Self::TooSoon { earliest } => BookRefusal::TooSoon {
                earliest: *earliest,
            },
            Self::TooFar { latest } => BookRefusal::TooFar { latest: *latest },
            Self::SlotTaken => BookRefusal::SlotTaken,
            Self::PatientBusy => BookRefusal::PatientBusy,
            Self::IdempotencyKeyReused | Self::Unexpected(_) => return None,
        })
    }

    /// The error a remembered refusal stands for.
    pub fn from_refusal(r: &BookRefusal) -> Self {
        let cc = |s: &str| CountryCode::parse(s).ok();
        match r {
            BookRefusal::Invalid { errors } => Self::Invalid(errors.clone()),
            BookRefusal::ProviderNotFound => Self::ProviderNotFound,
            BookRefusal::CountryNotServed { country } => match cc(country) {
                Some(c) => Self::CountryNotServed(c),
                None => Self::Unexpected(anyhow::anyhow!("bad stored country {country:?}")),
            },
            BookRefusal::CountryMismatch { provider, given } => match (cc(provider), cc(given)) {
                (Some(provider), Some(given)) => Self::CountryMismatch { provider, given },
                _ => Self::Unexpected(anyhow::anyhow!("bad stored countries")),
            },
            BookRefusal::SlotNotOffered => Self::SlotNotOffered,
            BookRefusal::TooSoon { earliest } => Self::TooSoon {
                earliest: *earliest,
            },
            BookRefusal::TooFar { latest } => Self::TooFar { latest: *latest },
            BookRefusal::SlotTaken => Self::SlotTaken,
            BookRefusal::PatientBusy => Self::PatientBusy,
        }
    }
}

/// A reschedule was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RescheduleError {
    /// No such appointment.
    #[error("appointment not found")]
    NotFound,
    /// The appointment is cancelled.
    #[error("the appointment is cancelled")]
    Cancelled,
    /// The caller expected another version.
    #[error("the appointment is at version {current}")]
    VersionMismatch {
        /// The version it is at.
        current: Version,
    },
    /// The appointment's provider no longer exists.
    #[error("provider not found")]
    ProviderNotFound,
    /// The appointment's country is not served any more.
    #[error("country {0} is not served")]
    CountryNotServed(CountryCode),
    /// The new start is not a slot start of the schedule.
    #[error("the start is not a slot of the provider's schedule")]
    SlotNotOffered,
    /// The new start is closer than the minimum notice.
    #[error("the earliest start that can be booked now is {earliest}")]
    TooSoon {
        /// `now + min_notice`.
        earliest: Timestamp,
    },
    /// The new start is beyond the horizon.
    #[error("the latest start that can be booked now is {latest}")]
    TooFar {
        /// `now + horizon`.
        latest: Timestamp,
    },
    /// The provider is booked at the new time.
    #[error("the slot is taken")]
    SlotTaken,
    /// The patient has another appointment at the new time.
    #[error("the patient already has an appointment at that time")]
    PatientBusy,
    /// A port failed; nothing was written.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A cancellation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No such appointment.
    #[error("appointment not found")]
    NotFound,
    /// The caller expected another version.
    #[error("the appointment is at version {current}")]
    VersionMismatch {
        /// The version it is at.
        current: Version,
    },
    /// A port failed; nothing was written.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Reading an appointment failed.
#[derive(Debug, thiserror::Error)]
pub enum GetAppointmentError {
    /// No such appointment.
    #[error("appointment not found")]
    NotFound,
    /// A port failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A listing failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// `to` is before `from`.
    #[error("`to` must not be before `from`")]
    ToBeforeFrom,
    /// A port failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Applying a confirmation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    /// No such appointment in the primary store.
    #[error("appointment not found")]
    NotFound,
    /// A port failed; nothing was written.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ConfirmError {
    /// Whether delivering the same confirmation again can never succeed
    /// (the appointment does not exist), so every transport dead-letters it
    /// instead of retrying; a port failure is worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::NotFound => true,
            Self::Unexpected(_) => false,
        }
    }
}
