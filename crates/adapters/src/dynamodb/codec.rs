//! The one place where domain values meet DynamoDB attribute values:
//! instants (Number milliseconds), statuses, versions, ids, country codes,
//! the sortable `(start, id)` positions of the listing indexes and the keys
//! of occupancy items. Every store of this adapter encodes and decodes
//! through this module; the forms DynamoDB shares with the other stores
//! come from [`crate::codec_common`].

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue;
use cita_core::ids::{AppointmentId, EventId, Version};
use jiff::Timestamp;

// Appointment and event ids are canonical UUID text, whose byte order is
// the UUID's byte order (and so the domain's id order).
pub(super) use crate::codec_common::{
    appointment_id, event_id, instant, millis, parse_appointment_id, parse_country,
    parse_patient_id, parse_provider_id, parse_status, parse_version, status,
};

/// An item as the SDK reads and writes it.
pub(super) type Item = HashMap<String, AttributeValue>;

/// Milliseconds in a UTC day: occupancy items are per UTC day.
pub(super) const MS_PER_DAY: i64 = 86_400_000;

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

/// A version as a Number.
pub(super) fn version(v: Version) -> anyhow::Result<i64> {
    i64::try_from(v.get()).context("version does not fit a 64-bit integer")
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
