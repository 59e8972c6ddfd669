//! The one place where domain values meet MySQL column values: instants,
//! statuses, versions, ids and country codes. Every store of this adapter
//! encodes and decodes through these functions.

use anyhow::Context as _;
use cita_core::booking::AppointmentStatus;
use cita_core::ids::{AppointmentId, EventId, PatientId, ProviderId, Version};
use cita_core::routing::CountryCode;
use jiff::Timestamp;

/// An instant as BIGINT unix milliseconds (UTC). Cita keeps instants to the
/// millisecond (the service truncates `now`; slot starts are whole minutes),
/// so this round-trips everything the service stores exactly; a finer part,
/// if a caller passed one, is dropped (toward the past).
pub(super) fn millis(t: Timestamp) -> i64 {
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
pub(super) fn instant(ms: i64) -> anyhow::Result<Timestamp> {
    Timestamp::from_millisecond(ms).with_context(|| format!("stored instant {ms} is out of range"))
}

/// The stored name of a status. The migrations spell out `'cancelled'`
/// (the virtual `active_provider` / `active_patient` columns need the
/// literal); the test below keeps the two in step.
pub(super) fn status(s: AppointmentStatus) -> &'static str {
    match s {
        AppointmentStatus::Pending => "pending",
        AppointmentStatus::Confirmed => "confirmed",
        AppointmentStatus::Cancelled => "cancelled",
    }
}

/// Reads a status stored by [`status`].
pub(super) fn parse_status(s: &str) -> anyhow::Result<AppointmentStatus> {
    [
        AppointmentStatus::Pending,
        AppointmentStatus::Confirmed,
        AppointmentStatus::Cancelled,
    ]
    .into_iter()
    .find(|candidate| status(*candidate) == s)
    .with_context(|| format!("unknown stored status {s:?}"))
}

/// A version as BIGINT.
pub(super) fn version(v: Version) -> anyhow::Result<i64> {
    i64::try_from(v.get()).context("version does not fit a BIGINT")
}

/// Reads a version stored by [`version`].
pub(super) fn parse_version(v: i64) -> anyhow::Result<Version> {
    let n = u64::try_from(v).with_context(|| format!("stored version {v} is negative"))?;
    Version::new(n).with_context(|| format!("stored version {v} is invalid"))
}

/// An appointment id as canonical hyphenated lower-case text (36 ASCII
/// characters, `ascii_bin`): for UUIDv7 the text order is the byte order,
/// which is the order of every listing.
pub(super) fn appointment_id(id: AppointmentId) -> String {
    id.as_uuid().hyphenated().to_string()
}

/// An event id, in the same text form as appointment ids.
pub(super) fn event_id(id: EventId) -> String {
    id.as_uuid().hyphenated().to_string()
}

/// Reads an appointment id stored by [`appointment_id`].
pub(super) fn parse_appointment_id(s: &str) -> anyhow::Result<AppointmentId> {
    AppointmentId::parse(s).with_context(|| format!("stored appointment id {s:?} is invalid"))
}

/// Reads a provider id.
pub(super) fn parse_provider_id(s: &str) -> anyhow::Result<ProviderId> {
    ProviderId::parse(s).with_context(|| format!("stored provider id {s:?} is invalid"))
}

/// Reads a patient id.
pub(super) fn parse_patient_id(s: &str) -> anyhow::Result<PatientId> {
    PatientId::parse(s).with_context(|| format!("stored patient id {s:?} is invalid"))
}

/// Reads a country code (stored as its two upper-case letters).
pub(super) fn parse_country(s: &str) -> anyhow::Result<CountryCode> {
    CountryCode::parse(s).with_context(|| format!("stored country {s:?} is invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_literal_for_cancelled_is_the_stored_status() {
        assert_eq!(status(AppointmentStatus::Cancelled), "cancelled");
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
    }

    #[test]
    fn uuid_v7_text_order_is_byte_order() {
        let mut ids: Vec<AppointmentId> = (0..200).map(|_| AppointmentId::new()).collect();
        ids.reverse();
        let mut by_text = ids.clone();
        by_text.sort_by_key(|id| appointment_id(*id));
        let mut by_bytes = ids;
        by_bytes.sort();
        assert_eq!(by_text, by_bytes);
    }
}
