//! The event envelope of EVENTS.md, with serde producing exactly its JSON.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::booking::{Appointment, AppointmentStatus};
use crate::ids::{AppointmentId, EventId, PatientId, ProviderId, Version};
use crate::routing::CountryCode;

/// What happened to an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// Booked.
    #[serde(rename = "appointment.requested")]
    Requested,
    /// Moved to a new slot.
    #[serde(rename = "appointment.rescheduled")]
    Rescheduled,
    /// Cancelled.
    #[serde(rename = "appointment.cancelled")]
    Cancelled,
    /// The country recorded the current version.
    #[serde(rename = "appointment.confirmed")]
    Confirmed,
}

impl EventType {
    /// Every type, in lifecycle order.
    pub const ALL: [EventType; 4] = [
        Self::Requested,
        Self::Rescheduled,
        Self::Cancelled,
        Self::Confirmed,
    ];

    /// The wire name (`appointment.requested`, …), also the SNS `eventType`
    /// attribute and the EventBridge detail-type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "appointment.requested",
            Self::Rescheduled => "appointment.rescheduled",
            Self::Cancelled => "appointment.cancelled",
            Self::Confirmed => "appointment.confirmed",
        }
    }

    /// Whether country workers process this type (everything but confirmations).
    pub fn is_country_work(self) -> bool {
        !matches!(self, Self::Confirmed)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not an event type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// Instants with millisecond precision, always three digits (`…58.120Z`).
pub mod millis {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as RFC 3339 UTC with exactly three fractional digits.
    ///
    /// # Errors
    /// Only the serializer's own.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{t:.3}"))
    }

    /// Accepts any RFC 3339 instant.
    ///
    /// # Errors
    /// When the text is not an RFC 3339 instant.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Instants printed in UTC with a fraction only when there is one (`…14:00:00Z`).
pub mod utc {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as RFC 3339 UTC.
    ///
    /// # Errors
    /// Only the serializer's own.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    /// Accepts any RFC 3339 instant.
    ///
    /// # Errors
    /// When the text is not an RFC 3339 instant.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The appointment as the API returns it, at one version: the HTTP
/// responses' body, what events carry and what a country records. One type,
/// so the three cannot differ (EVENTS.md: "the appointment as the API
/// returns it").
///
/// With the `utoipa` feature it is also its own OpenAPI schema, published
/// under the name `AppointmentDto` that `/openapi.json` has always used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "utoipa",
    schema(
        as = AppointmentDto,
        description = "An appointment as the API returns it (and as events carry it)."
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppointmentSnapshot {
    /// UUIDv7.
    #[cfg_attr(
        feature = "utoipa",
        schema(value_type = String, format = Uuid, example = "0193a4c2-7b1e-7c3a-9f3e-2d4b5a6c7d8e")
    )]
    pub id: AppointmentId,
    /// The provider.
    #[cfg_attr(feature = "utoipa", schema(value_type = String))]
    pub provider_id: ProviderId,
    /// The patient.
    #[cfg_attr(feature = "utoipa", schema(value_type = String))]
    pub patient_id: PatientId,
    /// The processing country.
    #[cfg_attr(feature = "utoipa", schema(value_type = String))]
    pub country_iso: CountryCode,
    /// UTC.
    #[serde(with = "utc")]
    #[cfg_attr(
        feature = "utoipa",
        schema(value_type = String, format = DateTime, example = "2026-11-23T14:00:00Z")
    )]
    pub start: Timestamp,
    /// UTC.
    #[serde(with = "utc")]
    #[cfg_attr(
        feature = "utoipa",
        schema(value_type = String, format = DateTime, example = "2026-11-23T14:30:00Z")
    )]
    pub end: Timestamp,
    /// `pending` until the country records it, then `confirmed`;
    /// `cancelled` is final.
    pub status: AppointmentStatus,
    /// 1 on booking, + 1 per reschedule or cancel (a confirmation does not
    /// change it).
    #[cfg_attr(feature = "utoipa", schema(value_type = u64))]
    pub version: Version,
    /// Free text or null.
    pub notes: Option<String>,
    /// Why it was cancelled, or null.
    pub cancel_reason: Option<String>,
    /// When it was booked: UTC, milliseconds.
    #[serde(with = "millis")]
    #[cfg_attr(
        feature = "utoipa",
        schema(value_type = String, format = DateTime, example = "2026-11-20T10:00:00.120Z")
    )]
    pub created_at: Timestamp,
    /// When it last changed: UTC, milliseconds.
    #[serde(with = "millis")]
    #[cfg_attr(
        feature = "utoipa",
        schema(value_type = String, format = DateTime, example = "2026-11-20T10:00:00.120Z")
    )]
    pub updated_at: Timestamp,
}

impl From<&Appointment> for AppointmentSnapshot {
    fn from(a: &Appointment) -> Self {
        Self {
            id: a.id,
            provider_id: a.provider_id.clone(),
            patient_id: a.patient_id.clone(),
            country_iso: a.country,
            start: a.start,
            end: a.end,
            status: a.status,
            version: a.version,
            notes: a.notes.as_ref().map(|n| n.as_str().to_owned()),
            cancel_reason: a.cancel_reason.as_ref().map(|r| r.as_str().to_owned()),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// One message: every body on every transport is this JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventEnvelope {
    /// UUIDv7; consumers drop repeats.
    pub event_id: EventId,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened.
    #[serde(with = "millis")]
    pub occurred_at: Timestamp,
    /// The appointment's id.
    pub appointment_id: AppointmentId,
    /// The appointment's version after the change.
    pub version: Version,
    /// The processing country (routing key).
    pub country_iso: CountryCode,
    /// The appointment at that version.
    pub appointment: AppointmentSnapshot,
}

impl EventEnvelope {
    /// The event for an appointment at its current version.
    pub fn for_appointment(
        event_type: EventType,
        appointment: &Appointment,
        at: Timestamp,
    ) -> Self {
        Self {
            event_id: EventId::new(),
            event_type,
            occurred_at: at,
            appointment_id: appointment.id,
            version: appointment.version,
            country_iso: appointment.country,
            appointment: AppointmentSnapshot::from(appointment),
        }
    }

    /// A country's confirmation that it recorded `snapshot`.
    pub fn confirmation_of(snapshot: &AppointmentSnapshot, at: Timestamp) -> Self {
        Self {
            event_id: EventId::new(),
            event_type: EventType::Confirmed,
            occurred_at: at,
            appointment_id: snapshot.id,
            version: snapshot.version,
            country_iso: snapshot.country_iso,
            appointment: snapshot.clone(),
        }
    }
}
