//! The one place where domain values meet DynamoDB attribute values:
//! instants (Number milliseconds), statuses, versions, ids, country codes,
//! the sortable `(start, id)` positions of the listing indexes and the keys
//! of occupancy items. Every store of this adapter encodes and decodes
//! through this module.

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue;
use cita_core::booking::AppointmentStatus;
use cita_core::ids::{AppointmentId, EventId, PatientId, ProviderId, Version};
use cita_core::routing::CountryCode;
use jiff::Timestamp;

/// An item as the SDK reads and writes it.
pub(super) type Item = HashMap<String, AttributeValue>;

/// Milliseconds in a UTC day: occupancy items are per UTC day.
pub(super) const MS_PER_DAY: i64 = 86_400_000;

/// An instant as unix milliseconds, floored.
///
/// Cita keeps instants to the millisecond (the service truncates `now`;
/// slot starts are whole minutes), so this round-trips everything the
/// service stores exactly, as every other store of Cita does. A finer part,
/// if a caller passed one, moves toward the past, never into the future.
pub(super) fn millis(t: Timestamp) -> i64 {
    let ms = t.as_millisecond();
    // `as_millisecond` truncates toward zero; floor negative instants too.
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

/// A Number attribute.
pub(super) fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// A String attribute.
pub(super) fn string(s: impl Into<String>) -> AttributeValue {
    AttributeValue::S(s.into())
}

/// A String attribute of `item`.
pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> anyhow::Result<&'a str> {
    opt_s(item, name)?.with_context(|| format!("attribute {name} is missing"))
}

/// A String attribute of `item` that may be absent.
pub(super) fn opt_s<'a>(item: &'a Item, name: &str) -> anyhow::Result<Option<&'a str>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s)),
        Some(other) => anyhow::bail!("attribute {name} is not a string: {other:?}"),
    }
}

/// A Number attribute of `item`, as an integer.
pub(super) fn get_n(item: &Item, name: &str) -> anyhow::Result<i64> {
    opt_n(item, name)?.with_context(|| format!("attribute {name} is missing"))
}

/// A Number attribute of `item` that may be absent, as an integer.
pub(super) fn opt_n(item: &Item, name: &str) -> anyhow::Result<Option<i64>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .with_context(|| format!("attribute {name} is not an integer: {n:?}")),
        Some(other) => anyhow::bail!("attribute {name} is not a number: {other:?}"),
    }
}

/// The stored name of a status.
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

/// A version as a Number.
pub(super) fn version(v: Version) -> anyhow::Result<i64> {
    i64::try_from(v.get()).context("version does not fit a 64-bit integer")
}

/// Reads a version stored by [`version`].
pub(super) fn parse_version(v: i64) -> anyhow::Result<Version> {
    let n = u64::try_from(v).with_context(|| format!("stored version {v} is negative"))?;
    Version::new(n).with_context(|| format!("stored version {v} is invalid"))
}

/// An appointment id as text: the canonical hyphenated lower case, whose
/// byte order is the UUID's byte order (and so the domain's id order).
pub(super) fn appointment_id(id: AppointmentId) -> String {
    id.as_uuid().hyphenated().to_string()
}

/// Reads an appointment id stored by [`appointment_id`].
pub(super) fn parse_appointment_id(s: &str) -> anyhow::Result<AppointmentId> {
    AppointmentId::parse(s).with_context(|| format!("stored appointment id {s:?} is invalid"))
}

/// An event id as text, like [`appointment_id`].
pub(super) fn event_id(id: EventId) -> String {
    id.as_uuid().hyphenated().to_string()
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

/// A millisecond instant as 20 decimal digits whose text order is the
/// instants' order, negative ones included: flipping the sign bit maps
/// `i64` onto `u64` preserving order, and zero padding makes text order
/// numeric order.
pub(super) fn sortable(ms: i64) -> String {
    format!("{:020}", ms.cast_unsigned() ^ (1 << 63))
}

/// The sort key of the listing indexes: `sortable(start)#id`, whose text
/// order is (start, id) order because every `sortable` has the same length
/// and ids are canonical UUID text.
pub(super) fn position(start_ms: i64, id: AppointmentId) -> String {
    format!("{}#{}", sortable(start_ms), appointment_id(id))
}

/// A bound between positions: every position of a start before `ms` sorts
/// below it, every position of a start at or after `ms` above it (a
/// position continues with `#`). No position equals it.
pub(super) fn position_bound(ms: i64) -> String {
    sortable(ms)
}

/// The sort key of the outbox index: `sortable(order)#event id`.
pub(super) fn outbox_order(order_ms: i64, id: EventId) -> String {
    format!("{}#{}", sortable(order_ms), event_id(id))
}

/// Whose time an occupancy item records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum OwnerKind {
    /// A provider: holds are `[start, end + buffer)`.
    Provider,
    /// A patient: holds are `[start, end)`.
    Patient,
}

/// The key of an occupancy item: `provider#{id}#{yyyy-mm-dd}` or
/// `patient#{id}#{yyyy-mm-dd}`, the UTC date of day number `day` (days
/// since 1970-01-01). Caller ids never contain `#`, so keys never collide.
pub(super) fn occupancy_key(kind: OwnerKind, owner: &str, day: i64) -> anyhow::Result<String> {
    let midnight = day
        .checked_mul(MS_PER_DAY)
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .with_context(|| format!("day {day} is out of range"))?;
    let kind = match kind {
        OwnerKind::Provider => "provider",
        OwnerKind::Patient => "patient",
    };
    Ok(format!("{kind}#{owner}#{}", midnight.strftime("%Y-%m-%d")))
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
    fn instants_keep_the_millisecond_and_floor_below_it() {
        let t: Timestamp = "2031-03-03T10:00:00.123Z".parse().unwrap();
        assert_eq!(instant(millis(t)).unwrap(), t);
        let fine: Timestamp = "2031-03-03T10:00:00.123999Z".parse().unwrap();
        assert_eq!(instant(millis(fine)).unwrap(), t);
        let before_epoch: Timestamp = "1969-12-31T23:59:59.9995Z".parse().unwrap();
        assert_eq!(millis(before_epoch), -1);
    }

    #[test]
    fn sortable_text_order_is_numeric_order() {
        let values = [i64::MIN, -86_400_000, -1, 0, 1, 999, 1_000, i64::MAX];
        for pair in values.windows(2) {
            let (a, b) = (sortable(pair[0]), sortable(pair[1]));
            assert_eq!(a.len(), 20);
            assert!(a < b, "{} < {}: {a} < {b}", pair[0], pair[1]);
        }
    }

    #[test]
    fn positions_order_by_start_then_id_and_bounds_fall_between() {
        let mut ids: Vec<AppointmentId> = (0..50).map(|_| AppointmentId::new()).collect();
        ids.reverse();
        let starts = [-5_000, 0, 7, 1_000, 1_001];
        let mut pairs: Vec<(i64, AppointmentId)> = starts
            .iter()
            .flat_map(|s| ids.iter().map(move |id| (*s, *id)))
            .collect();
        let mut by_text = pairs.clone();
        by_text.sort_by_key(|(s, id)| position(*s, *id));
        pairs.sort();
        assert_eq!(by_text, pairs);
        for (s, id) in &pairs {
            let p = position(*s, *id);
            assert!(position_bound(*s) < p);
            assert!(position_bound(*s + 1) > p);
        }
    }

    #[test]
    fn occupancy_keys_name_the_utc_date() {
        let day = millis("2031-03-03T23:59:59.999Z".parse().unwrap()).div_euclid(MS_PER_DAY);
        assert_eq!(
            occupancy_key(OwnerKind::Provider, "p-1", day).unwrap(),
            "provider#p-1#2031-03-03"
        );
        assert_eq!(
            occupancy_key(OwnerKind::Patient, "x", -1).unwrap(),
            "patient#x#1969-12-31"
        );
    }
}
