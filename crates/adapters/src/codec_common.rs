//! The value forms the database adapters (SQLite, PostgreSQL, MySQL,
//! DynamoDB) store alike: status names, versions, caller-given ids and
//! country codes as text, and, for the stores without a native instant or
//! UUID type (all but PostgreSQL), instants as unix milliseconds and
//! appointment and event ids as UUID text.
//!
//! Each adapter's `codec` re-exports what it uses, so that module stays the
//! one place where its stores meet their column or attribute values; forms
//! that depend on the driver (PostgreSQL's `timestamptz` and `uuid`, the
//! integer type a version must fit) stay there.

use anyhow::Context as _;
use cita_core::booking::AppointmentStatus;
#[cfg(any(feature = "sqlite", feature = "dynamodb"))]
use cita_core::ids::{AppointmentId, EventId};
use cita_core::ids::{PatientId, ProviderId, Version};
use cita_core::routing::CountryCode;
use jiff::Timestamp;

/// An instant as unix milliseconds, floored.
///
/// Cita keeps instants to the millisecond (the service truncates `now`;
/// slot starts are whole minutes), so this round-trips everything the
/// service stores exactly, and every store of Cita agrees on the precision.
/// A finer part, if a caller passed one, moves toward the past, never into
/// the future.
pub(crate) fn millis(t: Timestamp) -> i64 {
    // `as_millisecond` truncates toward zero; floor instead so that negative
    // instants also move toward the past, never into the future.
    let ms = t.as_millisecond();
    if t.subsec_nanosecond() < 0 && t.subsec_nanosecond() % 1_000_000 != 0 {
        ms - 1
    } else {
        ms
    }
}

/// Reads an instant stored by [`millis`].
#[cfg(feature = "dynamodb")]
pub(crate) fn instant(ms: i64) -> anyhow::Result<Timestamp> {
    Timestamp::from_millisecond(ms).with_context(|| format!("stored instant {ms} is out of range"))
}

/// The stored name of a status. The SQL adapters' migrations and queries
/// spell out `'cancelled'` (partial indexes, exclusion constraints and
/// virtual columns need the literal); a test in each of their codecs keeps
/// the two in step.
pub(crate) fn status(s: AppointmentStatus) -> &'static str {
    match s {
        AppointmentStatus::Pending => "pending",
        AppointmentStatus::Confirmed => "confirmed",
        AppointmentStatus::Cancelled => "cancelled",
    }
}

/// Reads a status stored by [`status`].
pub(crate) fn parse_status(s: &str) -> anyhow::Result<AppointmentStatus> {
    [
        AppointmentStatus::Pending,
        AppointmentStatus::Confirmed,
        AppointmentStatus::Cancelled,
    ]
    .into_iter()
    .find(|candidate| status(*candidate) == s)
    .with_context(|| format!("unknown stored status {s:?}"))
}

/// Reads a version stored as a 64-bit integer (each adapter's `version`
/// writes it, naming its own column type when it does not fit).
pub(crate) fn parse_version(v: i64) -> anyhow::Result<Version> {
    let n = u64::try_from(v).with_context(|| format!("stored version {v} is negative"))?;
    Version::new(n).with_context(|| format!("stored version {v} is invalid"))
}

/// An appointment id as canonical hyphenated lower-case text: for UUIDv7
/// the text order is the byte order (and so the domain's id order), which
/// is the order of every listing.
#[cfg(any(feature = "sqlite", feature = "dynamodb"))]
pub(crate) fn appointment_id(id: AppointmentId) -> String {
    id.as_uuid().hyphenated().to_string()
}

/// An event id, in the same text form as [`appointment_id`].
#[cfg(any(feature = "sqlite", feature = "dynamodb"))]
pub(crate) fn event_id(id: EventId) -> String {
    id.as_uuid().hyphenated().to_string()
}

/// Reads an appointment id stored by [`appointment_id`].
#[cfg(feature = "dynamodb")]
pub(crate) fn parse_appointment_id(s: &str) -> anyhow::Result<AppointmentId> {
    AppointmentId::parse(s).with_context(|| format!("stored appointment id {s:?} is invalid"))
}

/// Reads a provider id.
pub(crate) fn parse_provider_id(s: &str) -> anyhow::Result<ProviderId> {
    ProviderId::parse(s).with_context(|| format!("stored provider id {s:?} is invalid"))
}

/// Reads a patient id.
pub(crate) fn parse_patient_id(s: &str) -> anyhow::Result<PatientId> {
    PatientId::parse(s).with_context(|| format!("stored patient id {s:?} is invalid"))
}

/// Reads a country code (stored as its two upper-case letters).
pub(crate) fn parse_country(s: &str) -> anyhow::Result<CountryCode> {
    CountryCode::parse(s).with_context(|| format!("stored country {s:?} is invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [
            AppointmentStatus::Pending,
            AppointmentStatus::Confirmed,
            AppointmentStatus::Cancelled,
        ] {
            assert_eq!(parse_status(status(s)).unwrap(), s);
        }
        assert!(parse_status("Pending").is_err());
    }

    #[test]
    fn millis_keep_the_millisecond_and_floor_below_it() {
        let t: Timestamp = "2031-03-03T10:00:00.123Z".parse().unwrap();
        assert_eq!(millis(t), t.as_millisecond());
        let fine: Timestamp = "2031-03-03T10:00:00.123999Z".parse().unwrap();
        assert_eq!(millis(fine), t.as_millisecond());
        let before_epoch: Timestamp = "1969-12-31T23:59:59.9995Z".parse().unwrap();
        assert_eq!(millis(before_epoch), -1);
    }

    #[test]
    #[cfg(feature = "dynamodb")]
    fn instants_round_trip_to_the_millisecond_and_floor_below_it() {
        let t: Timestamp = "2031-03-03T10:00:00.123Z".parse().unwrap();
        assert_eq!(instant(millis(t)).unwrap(), t);
        let fine: Timestamp = "2031-03-03T10:00:00.123999Z".parse().unwrap();
        assert_eq!(instant(millis(fine)).unwrap(), t);
        let before_epoch: Timestamp = "1969-12-31T23:59:59.9995Z".parse().unwrap();
        assert_eq!(
            instant(millis(before_epoch)).unwrap(),
            "1969-12-31T23:59:59.999Z".parse::<Timestamp>().unwrap()
        );
        assert!(instant(i64::MAX).is_err());
    }

    #[test]
    #[cfg(feature = "dynamodb")]
    fn uuid_v7_text_order_is_byte_order() {
        let mut ids: Vec<AppointmentId> = (0..200).map(|_| AppointmentId::new()).collect();
        ids.reverse();
        let mut by_text = ids.clone();
        by_text.sort_by_key(|id| appointment_id(*id));
        let mut by_bytes = ids;
        by_bytes.sort();
        assert_eq!(by_text, by_bytes);
        #[cfg(feature = "dynamodb")]
        for id in &by_text {
            assert_eq!(parse_appointment_id(&appointment_id(*id)).unwrap(), *id);
        }
    }

    #[test]
    fn versions_and_caller_ids_are_checked_on_the_way_out() {
        assert_eq!(parse_version(1).unwrap(), Version::FIRST);
        assert!(parse_version(-1).is_err());
        assert!(parse_provider_id("ana").is_ok());
        assert!(parse_patient_id("p-1").is_ok());
        assert_eq!(parse_country("PE").unwrap(), CountryCode::PE);
        assert!(parse_country("peru").is_err());
    }
}
