//! Occupancy items: for each (provider, UTC day) and (patient, UTC day)
//! that some active appointment holds, one item listing those holds, with a
//! version that every rewrite checks and increments. This module is the
//! pure part: which items a write touches, whether it clashes, and what the
//! items become. `docs/dynamodb.md` explains why it is correct.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue;
use cita_core::booking::Appointment;
use cita_core::slots::{BufferMinutes, MAX_APPOINTMENT};
use jiff::SignedDuration;

use super::codec::{self, Item, MS_PER_DAY, OwnerKind};

/// The longest time an appointment may hold its provider: the longest
/// appointment and the longest buffer (12 hours), so a hold touches at most
/// two UTC days and a write at most eight occupancy items.
pub(super) const MAX_HOLD: SignedDuration =
    SignedDuration::from_secs(MAX_APPOINTMENT.as_secs() + BufferMinutes::MAX as i64 * 60);

/// The occupancy table's key attribute.
pub(super) const KEY: &str = "key";
const VERSION: &str = "version";
const HOLDS: &str = "holds";
const HOLD_START: &str = "s";
const HOLD_END: &str = "e";
const HOLD_ID: &str = "id";
/// The appointment's end without its buffer; items written before it was
/// kept lack it, and their holds count as settled at the hold's end (which
/// can only refuse more).
const HOLD_SETTLED: &str = "x";

/// The time an appointment takes from one owner, `[start, end)` in unix
/// milliseconds, and how far back it reaches (`reach`): a new booking of a
/// provider also refuses appointments that end (`settled`, without their
/// buffer) after its start minus its own buffer
/// (`Appointment::blocks_booking`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claim {
    kind: OwnerKind,
    owner: String,
    start: i64,
    end: i64,
    settled: i64,
    reach: i64,
}

impl Claim {
    /// What an appointment holds of its provider, `[start, end + buffer)`;
    /// nothing when it is cancelled.
    pub(super) fn provider(a: &Appointment) -> Option<Self> {
        let (start, end) = a.provider_hold();
        a.status.is_active().then(|| Self {
            kind: OwnerKind::Provider,
            owner: a.provider_id.as_str().to_owned(),
            start: codec::millis(start),
            end: codec::millis(end),
            settled: codec::millis(a.end),
            reach: codec::millis(start),
        })
    }

    /// As [`Claim::provider`], for a new booking: it reaches back by its
    /// buffer, the provider's current one.
    pub(super) fn provider_booking(a: &Appointment) -> Option<Self> {
        Self::provider(a).map(|c| Self {
            reach: codec::millis(a.start - a.buffer.duration()),
            ..c
        })
    }

    /// What an appointment holds of its patient, `[start, end)`; nothing
    /// when it is cancelled.
    pub(super) fn patient(a: &Appointment) -> Option<Self> {
        a.status.is_active().then(|| Self {
            kind: OwnerKind::Patient,
            owner: a.patient_id.as_str().to_owned(),
            start: codec::millis(a.start),
            end: codec::millis(a.end),
            settled: codec::millis(a.end),
            reach: codec::millis(a.start),
        })
    }

    /// The keys of the days the claim reads and rewrites: every UTC day
    /// holding one of the milliseconds of `[reach, end)` (none for an empty
    /// claim). Any hold the claim [`meets`](Self::meets) shares one of them.
    fn keys(&self) -> anyhow::Result<Vec<String>> {
        self.days(self.reach.min(self.start))
    }

    /// The keys of the days the hold itself is listed on: `[start, end)`.
    fn hold_keys(&self) -> anyhow::Result<Vec<String>> {
        self.days(self.start)
    }

    fn days(&self, from: i64) -> anyhow::Result<Vec<String>> {
        if self.end <= self.start {
            return Ok(Vec::new());
        }
        let (first, last) = (
            from.div_euclid(MS_PER_DAY),
            (self.end - 1).div_euclid(MS_PER_DAY),
        );
        (first..=last)
            .map(|day| codec::occupancy_key(self.kind, &self.owner, day))
            .collect()
    }

    fn meets(&self, h: &Hold) -> bool {
        h.start < self.end && (self.start < h.end || self.reach < h.settled)
    }
}

/// One appointment's hold as an occupancy item lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hold {
    start: i64,
    end: i64,
    settled: i64,
    appointment: String,
}

/// An occupancy item as read: `version` is `None` when the item does not
/// exist (nobody ever held that owner on that day).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Day {
    version: Option<i64>,
    holds: Vec<Hold>,
}

/// An occupancy item to write, on condition that it is still at `expected`
/// (`None`: still absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DayWrite {
    pub(super) key: String,
    pub(super) expected: Option<i64>,
    holds: Vec<Hold>,
}

/// What one write does to one owner kind's occupancy: the appointment's
/// claim before (`None` for an insert or a cancelled appointment) and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Move {
    old: Option<Claim>,
    new: Option<Claim>,
}

impl Move {
    /// A move from `old` to `new`.
    pub(super) fn new(old: Option<Claim>, new: Option<Claim>) -> Self {
        Self { old, new }
    }

    /// An unchanged claim is already recorded and, by the invariant every
    /// committed write keeps, clashes with nothing: such a write (a
    /// confirmation, say) neither reads nor rewrites occupancy.
    fn is_noop(&self) -> bool {
        self.old == self.new
    }

    /// The occupancy items the write reads and rewrites: every day of the
    /// old claim (its hold leaves) and of the new one (its hold arrives).
    pub(super) fn keys(&self) -> anyhow::Result<Vec<String>> {
        if self.is_noop() {
            return Ok(Vec::new());
        }
        let mut keys = BTreeSet::new();
        for claim in self.old.iter().chain(&self.new) {
            keys.extend(claim.keys()?);
        }
        Ok(keys.into_iter().collect())
    }

    /// Whether the new claim meets a hold of another appointment on one of
    /// its days (two overlapping holds share the day of any instant they
    /// share, so looking at the claim's own days finds every overlap).
    pub(super) fn clashes(&self, id: &str, days: &HashMap<String, Day>) -> anyhow::Result<bool> {
        let Some(new) = self.new.as_ref().filter(|_| !self.is_noop()) else {
            return Ok(false);
        };
        for key in new.keys()? {
            let clash = days.get(&key).is_some_and(|day| {
                day.holds
                    .iter()
                    .any(|h| h.appointment != id && new.meets(h))
            });
            if clash {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The items as they become: the appointment's hold taken out of every
    /// day read and put back into each day of the new claim, in start order.
    pub(super) fn rewrite(
        &self,
        id: &str,
        days: &HashMap<String, Day>,
    ) -> anyhow::Result<Vec<DayWrite>> {
        let arriving = match &self.new {
            Some(claim) => claim.hold_keys()?,
            None => Vec::new(),
        };
        self.keys()?
            .into_iter()
            .map(|key| {
                let day = days
                    .get(&key)
                    .with_context(|| format!("occupancy item {key} was not read"))?;
                let mut holds: Vec<Hold> = day
                    .holds
                    .iter()
                    .filter(|h| h.appointment != id)
                    .cloned()
                    .collect();
                if let Some(claim) = self.new.as_ref().filter(|_| arriving.contains(&key)) {
                    holds.push(Hold {
                        start: claim.start,
                        end: claim.end,
                        settled: claim.settled,
                        appointment: id.to_owned(),
                    });
                }
                holds.sort_by(|a, b| (a.start, &a.appointment).cmp(&(b.start, &b.appointment)));
                Ok(DayWrite {
                    key,
                    expected: day.version,
                    holds,
                })
            })
            .collect()
    }
}

/// Reads an occupancy item (`None`: the item does not exist).
pub(super) fn decode(item: Option<&Item>) -> anyhow::Result<Day> {
    let Some(item) = item else {
        return Ok(Day::default());
    };
    let key = codec::get_s(item, KEY)?;
    let holds = match item.get(HOLDS) {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|h| {
                let AttributeValue::M(m) = h else {
                    anyhow::bail!("a hold is not a map");
                };
                let end = codec::get_n(m, HOLD_END)?;
                let settled = match m.get(HOLD_SETTLED) {
                    None => end,
                    Some(_) => codec::get_n(m, HOLD_SETTLED)?,
                };
                Ok(Hold {
                    start: codec::get_n(m, HOLD_START)?,
                    end,
                    settled,
                    appointment: codec::get_s(m, HOLD_ID)?.to_owned(),
                })
            })
            .collect::<anyhow::Result<_>>()
            .with_context(|| format!("occupancy item {key}: unreadable holds"))?,
        _ => anyhow::bail!("occupancy item {key}: no list of holds"),
    };
    Ok(Day {
        version: Some(codec::get_n(item, VERSION)?),
        holds,
    })
}

impl DayWrite {
    /// The whole item, at the next version.
    pub(super) fn item(&self) -> Item {
        let holds = self
            .holds
            .iter()
            .map(|h| {
                AttributeValue::M(HashMap::from([
                    (HOLD_START.to_owned(), codec::number(h.start)),
                    (HOLD_END.to_owned(), codec::number(h.end)),
                    (HOLD_SETTLED.to_owned(), codec::number(h.settled)),
                    (HOLD_ID.to_owned(), codec::string(&h.appointment)),
                ]))
            })
            .collect();
        HashMap::from([
            (KEY.to_owned(), codec::string(&self.key)),
            (
                VERSION.to_owned(),
                codec::number(self.expected.unwrap_or(0) + 1),
            ),
            (HOLDS.to_owned(), AttributeValue::L(holds)),
        ])
    }

    /// The condition of the write with its expression names and values: the item is still
    /// absent, or still at the version read.
    pub(super) fn condition(&self) -> (&'static str, Vec<(String, String)>, Item) {
        match self.expected {
            None => (
                "attribute_not_exists(#k)",
                vec![("#k".to_owned(), KEY.to_owned())],
                Item::new(),
            ),
            Some(v) => (
                "#v = :seen",
                vec![("#v".to_owned(), VERSION.to_owned())],
                HashMap::from([(":seen".to_owned(), codec::number(v))]),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use cita_core::booking::AppointmentStatus;
    use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
    use cita_core::routing::CountryCode;
    use jiff::Timestamp;

    use super::*;

    fn appointment(start: &str, minutes: i64, buffer: u32) -> Appointment {
        let start: Timestamp = start.parse().unwrap();
        Appointment {
            id: AppointmentId::new(),
            provider_id: ProviderId::parse("p").unwrap(),
            patient_id: PatientId::parse("x").unwrap(),
            country: CountryCode::PE,
            start,
            end: start + SignedDuration::from_mins(minutes),
            buffer: BufferMinutes::new(buffer).unwrap(),
            status: AppointmentStatus::Pending,
            version: Version::FIRST,
            notes: None,
            cancel_reason: None,
            created_at: start,
            updated_at: start,
        }
    }

    fn read(writes: &[DayWrite]) -> HashMap<String, Day> {
        writes
            .iter()
            .map(|w| {
                let item = w.item();
                (w.key.clone(), decode(Some(&item)).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_longest_hold_is_twelve_hours() {
        assert_eq!(MAX_HOLD, SignedDuration::from_hours(12));
    }

    #[test]
    fn a_hold_touches_every_day_it_holds_and_no_other() {
        let within = appointment("2031-03-03T10:00:00Z", 30, 0);
        let claim = Claim::provider(&within).unwrap();
        assert_eq!(claim.keys().unwrap(), vec!["provider#p#2031-03-03"]);

        // Ends exactly at midnight: the next day is not held.
        let to_midnight = appointment("2031-03-03T23:30:00Z", 30, 0);
        assert_eq!(
            Claim::patient(&to_midnight).unwrap().keys().unwrap(),
            vec!["patient#x#2031-03-03"]
        );
        // Its buffer crosses midnight: the provider's next day is held too.
        let buffered = appointment("2031-03-03T23:30:00Z", 30, 1);
        assert_eq!(
            Claim::provider(&buffered).unwrap().keys().unwrap(),
            vec!["provider#p#2031-03-03", "provider#p#2031-03-04"]
        );
        // Not minute-aligned.
        let mut odd = appointment("2031-03-03T23:59:59.999Z", 5, 0);
        odd.end = odd.start + SignedDuration::from_millis(1);
        assert_eq!(
            Claim::patient(&odd).unwrap().keys().unwrap(),
            vec!["patient#x#2031-03-03"]
        );
        odd.end = odd.start + SignedDuration::from_millis(2);
        assert_eq!(Claim::patient(&odd).unwrap().keys().unwrap().len(), 2);

        let mut cancelled = within.clone();
        cancelled.status = AppointmentStatus::Cancelled;
        assert_eq!(Claim::provider(&cancelled), None);
        assert_eq!(Claim::patient(&cancelled), None);
    }

    #[test]
    fn overlaps_are_found_on_shared_days_and_adjacent_holds_pass() {
        let first = appointment("2031-03-03T22:00:00Z", 480, 240);
        let id = codec::appointment_id(first.id);
        let mv = Move::new(None, Claim::provider(&first));
        let writes = mv.rewrite(&id, &HashMap::new()).is_err();
        assert!(writes, "days must be read before they are rewritten");
        let empty: HashMap<String, Day> = mv
            .keys()
            .unwrap()
            .into_iter()
            .map(|k| (k, Day::default()))
            .collect();
        assert!(!mv.clashes(&id, &empty).unwrap());
        let stored = read(&mv.rewrite(&id, &empty).unwrap());
        assert_eq!(stored.len(), 2, "a 12-hour hold from 22:00 spans two days");

        // Held until 10:00 the next day: 09:59 clashes, 10:00 does not.
        let late = appointment("2031-03-04T09:59:00Z", 5, 0);
        let mv = Move::new(None, Claim::provider(&late));
        assert!(
            mv.clashes(&codec::appointment_id(late.id), &stored)
                .unwrap()
        );
        let adjacent = appointment("2031-03-04T10:00:00Z", 5, 0);
        let mv = Move::new(None, Claim::provider(&adjacent));
        assert!(
            !mv.clashes(&codec::appointment_id(adjacent.id), &stored)
                .unwrap()
        );
        // The appointment never clashes with its own hold.
        let moved = Move::new(Claim::provider(&first), Claim::provider(&late));
        assert!(!moved.clashes(&id, &stored).unwrap());
    }

    #[test]
    fn a_new_booking_reaches_back_by_its_buffer_even_across_midnight() {
        // 23:00–23:30 the day before, no buffer of its own.
        let earlier = appointment("2031-03-03T23:00:00Z", 30, 0);
        let id = codec::appointment_id(earlier.id);
        let mv = Move::new(None, Claim::provider_booking(&earlier));
        let empty: HashMap<String, Day> = mv
            .keys()
            .unwrap()
            .into_iter()
            .map(|k| (k, Day::default()))
            .collect();
        let stored = read(&mv.rewrite(&id, &empty).unwrap());
        // 00:05 with a 40-minute buffer: 23:30 + 40 min reaches past 00:05.
        let next = appointment("2031-03-04T00:05:00Z", 30, 40);
        let booking = Move::new(None, Claim::provider_booking(&next));
        assert!(
            booking
                .keys()
                .unwrap()
                .contains(&"provider#p#2031-03-03".to_owned()),
            "the day before is read: the reach crosses midnight"
        );
        let mut days = stored.clone();
        for k in booking.keys().unwrap() {
            days.entry(k).or_default();
        }
        let next_id = codec::appointment_id(next.id);
        assert!(booking.clashes(&next_id, &days).unwrap());
        assert!(earlier.blocks_booking(&next), "the core rule agrees");
        // As a change of an existing appointment, only the holds count.
        let change = Move::new(None, Claim::provider(&next));
        assert!(!change.clashes(&next_id, &days).unwrap());
        // One buffer later is free.
        let free = appointment("2031-03-04T00:10:00Z", 30, 40);
        let booking = Move::new(None, Claim::provider_booking(&free));
        assert!(
            !booking
                .clashes(&codec::appointment_id(free.id), &days)
                .unwrap()
        );
        // The hold itself is only listed on the days it holds.
        let writes = booking
            .rewrite(&codec::appointment_id(free.id), &days)
            .unwrap();
        let after = read(&writes);
        assert_eq!(
            after["provider#p#2031-03-03"].holds.len(),
            1,
            "only the earlier one"
        );
        assert_eq!(after["provider#p#2031-03-04"].holds.len(), 1);
    }

    #[test]
    fn a_move_releases_the_old_days_and_versions_advance() {
        let a = appointment("2031-03-03T23:00:00Z", 120, 0);
        let id = codec::appointment_id(a.id);
        let insert = Move::new(None, Claim::patient(&a));
        let empty: HashMap<String, Day> = insert
            .keys()
            .unwrap()
            .into_iter()
            .map(|k| (k, Day::default()))
            .collect();
        let first = insert.rewrite(&id, &empty).unwrap();
        assert!(first.iter().all(|w| w.expected.is_none()));
        let stored = read(&first);

        let mut b = a.clone();
        b.start = "2031-03-05T10:00:00Z".parse().unwrap();
        b.end = b.start + SignedDuration::from_mins(30);
        let mv = Move::new(Claim::patient(&a), Claim::patient(&b));
        let mut days = stored.clone();
        for k in mv.keys().unwrap() {
            days.entry(k).or_default();
        }
        let writes = mv.rewrite(&id, &days).unwrap();
        assert_eq!(writes.len(), 3, "two days left, one arrived");
        let after = read(&writes);
        assert!(after["patient#x#2031-03-03"].holds.is_empty());
        assert!(after["patient#x#2031-03-04"].holds.is_empty());
        assert_eq!(after["patient#x#2031-03-05"].holds.len(), 1);
        assert_eq!(after["patient#x#2031-03-03"].version, Some(2));
        assert_eq!(after["patient#x#2031-03-05"].version, Some(1));

        let mut c = b.clone();
        c.status = AppointmentStatus::Cancelled;
        let cancel = Move::new(Claim::patient(&b), Claim::patient(&c));
        let writes = cancel.rewrite(&id, &after).unwrap();
        assert_eq!(writes.len(), 1);
        assert!(read(&writes)["patient#x#2031-03-05"].holds.is_empty());

        let same = Move::new(Claim::patient(&b), Claim::patient(&b));
        assert!(
            same.keys().unwrap().is_empty(),
            "an unchanged hold touches nothing"
        );
    }
}
