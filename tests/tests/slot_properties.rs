//! Properties of the slot generator (`available_slots`, `grid_slot_at`) over
//! random schedules, zones, date ranges, appointments and present instants,
//! checked against the semantics fixed in ARCHITECTURE.md ("Domain", slot
//! generation).
//!
//! Most cases are built to meet DST: the asked range usually contains a
//! 2025–2027 clock change of the provider's or the display zone, often with
//! that date's hours starting and ending within 90 minutes of the change, and
//! wall-clock boundaries are drawn mostly from the hours where the zones
//! change their clocks (00:00–03:00, 23:00, 24:00). `now` is sometimes put
//! exactly the notice or the horizon before a grid slot, to hit the
//! (inclusive) boundaries.
//!
//! Where a property needs a date's working time, it asks [`working_ranges`],
//! a small oracle written from the specification: it finds the instants of a
//! wall-clock time by round-tripping every nearby offset through jiff and, in a
//! gap, by searching for the first instant whose wall clock reaches that time,
//! rather than by the generator's own method.
//!
//! The number of cases comes from `PROPTEST_CASES` (proptest's default
//! configuration reads it; CI sets 1000).

use std::collections::{HashMap, HashSet};

use cita_core::slots::{
    AvailabilityRequest, BufferMinutes, Busy, DayHours, DaySlots, HorizonDays, LocalInterval,
    NoticeMinutes, Schedule, Slot, SlotMinutes, WEEKDAYS, WallTime, WeeklyHours, Zone,
    available_slots, grid_slot_at,
};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// Zones with a DST at midnight (Santiago), a 30-minute DST (Lord Howe), the
/// usual 1-hour DSTs (London, New York), none (Lima), a +05:45 offset
/// (Kathmandu) and the two sides of the date line (+14 and -11).
const ZONES: [&str; 8] = [
    "America/Santiago",
    "America/Lima",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
];
const KIRITIMATI: usize = 6;
const PAGO_PAGO: usize = 7;

/// One availability question with everything it needs.
#[derive(Debug, Clone)]
struct Case {
    schedule: Schedule,
    display: Zone,
    from: Date,
    to: Date,
    /// Sorted by start, as the generator requires.
    busy: Vec<Busy>,
    now: Timestamp,
}

impl Case {
    fn answer(&self) -> Vec<DaySlots> {
        available_slots(&AvailabilityRequest {
            schedule: &self.schedule,
            display: &self.display,
            from: self.from,
            to: self.to,
            busy: &self.busy,
            now: self.now,
        })
    }

    fn slot_len(&self) -> SignedDuration {
        self.schedule.slot.duration()
    }

    fn provider_tz(&self) -> &TimeZone {
        self.schedule.zone.tz()
    }

    fn display_date(&self, at: Timestamp) -> Date {
        self.display.tz().to_datetime(at).date()
    }

    /// The notice and horizon rule: `now + notice ≤ start ≤ now + horizon`.
    fn in_window(&self, start: Timestamp) -> bool {
        start >= self.now + self.schedule.min_notice.duration()
            && start <= self.now + self.schedule.horizon.duration()
    }

    /// The appointment rule: `[start, end + buffer)` meets no `[b.start, b.end + buffer)`.
    fn clashes(&self, slot: &Slot) -> Option<Busy> {
        let buffer = self.schedule.buffer.duration();
        self.busy
            .iter()
            .copied()
            .find(|b| slot.start < b.end + buffer && b.start < slot.end + buffer)
    }

    /// Whether a grid slot passes every rule and starts inside the asked dates.
    fn should_offer(&self, slot: &Slot) -> bool {
        let date = self.display_date(slot.start);
        self.from <= date
            && date <= self.to
            && self.in_window(slot.start)
            && self.clashes(slot).is_none()
    }
}

fn zone(name: &str) -> Zone {
    Zone::parse(name).expect("a zone of the bundled database")
}

fn wall(minutes: u16) -> WallTime {
    WallTime::from_hm(minutes / 60, minutes % 60).expect("00:00..=24:00")
}

/// A boundary of a working interval, in minutes since midnight. Half come
/// from the hours where the zones above change their clocks.
fn boundary() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => select(vec![0u16, 30, 60, 90, 120, 150, 180, 1380, 1410, 1440]),
        2 => (0u16..=288).prop_map(|m| m * 5),
        1 => 0u16..=1440,
    ]
}

/// A day's hours: 1–3 intervals cut from sorted boundaries, so they never
/// overlap but may touch; coinciding boundaries give fewer (or none).
fn day_hours() -> impl Strategy<Value = DayHours> {
    (1usize..=3)
        .prop_flat_map(|n| prop::collection::vec(boundary(), 2 * n))
        .prop_map(hours_from_boundaries)
}

/// Sorts the boundaries and pairs them into intervals, dropping empty ones.
fn hours_from_boundaries(mut b: Vec<u16>) -> DayHours {
    b.sort_unstable();
    let intervals = b
        .chunks(2)
        .filter(|p| p.len() == 2 && p[0] < p[1])
        .map(|p| LocalInterval::new(wall(p[0]), wall(p[1])).expect("start < end"))
        .collect();
    DayHours::new(intervals).expect("intervals cut from sorted boundaries never overlap")
}

/// Where the asked range is: around a DST transition (the first or second of
/// the year) of the provider's or the display zone, or around a plain date.
#[derive(Debug, Clone, Copy)]
enum Anchor {
    Transition { second: bool, of_display: bool },
    Date { month: i8, day: i8 },
}

/// Where `now` is.
#[derive(Debug, Clone, Copy)]
enum Now {
    /// From three days before the range to its end (`at` in thousandths),
    /// plus some seconds (often none).
    Free { at: u32, seconds: i64 },
    /// Exactly the notice before a grid slot of the range (picked by `at`),
    /// so that slot sits on the notice boundary.
    NoticeEdge { at: u32 },
    /// Exactly the horizon before a grid slot of the range.
    HorizonEdge { at: u32 },
}

/// Raw draws, turned into a [`Case`] by [`build_case`].
type When = (Anchor, i16, u32, i64);
type Rules = (u32, u32, u32, u32);
/// Weekly hours, overrides, and (maybe) the hours of the date of the
/// provider's transition as quarter-hour steps from its wall-clock time.
type Hours = ([DayHours; 7], Vec<(i64, DayHours)>, Option<Vec<i16>>);
type Moments = (Now, Vec<u32>);

fn case() -> impl Strategy<Value = Case> {
    let when = (
        prop_oneof![
            4 => (any::<bool>(), any::<bool>())
                .prop_map(|(second, of_display)| Anchor::Transition { second, of_display }),
            1 => (1i8..=12, 1i8..=28).prop_map(|(month, day)| Anchor::Date { month, day }),
        ],
        2025i16..=2027,
        0u32..1000,                       // where the anchor falls in the range
        prop_oneof![1i64..=3, 1i64..=31], // number of dates
    );
    // Zones with DST are drawn twice as often as the others.
    let any_zone = || prop_oneof![2 => select(vec![0usize, 2, 3, 4]), 1 => 0..ZONES.len()];
    let zones = prop_oneof![
        6 => (any_zone(), any_zone()),
        3 => any_zone().prop_map(|i| (i, i)),
        1 => Just((PAGO_PAGO, KIRITIMATI)),
        1 => Just((KIRITIMATI, PAGO_PAGO)),
    ];
    let rules = (
        prop_oneof![
            select(vec![5u32, 10, 15, 20, 30, 45, 60, 90, 120]),
            5u32..=480
        ],
        prop_oneof![Just(0u32), select(vec![5u32, 10, 15, 30, 60]), 0u32..=240],
        prop_oneof![3 => Just(0u32), 3 => 0u32..=1440, 1 => 0u32..=NoticeMinutes::MAX],
        prop_oneof![1u32..=7, 1u32..=365],
    );
    let hours = (
        prop::array::uniform7(prop_oneof![1 => Just(DayHours::closed()), 6 => day_hours()]),
        prop::collection::vec(
            (
                0i64..40,
                prop_oneof![1 => Just(DayHours::closed()), 2 => day_hours()],
            ),
            0..=4,
        ),
        prop::option::of(prop::collection::vec(-6i16..=6, 2..=6)),
    );
    let moments = (
        prop_oneof![
            3 => (0u32..=1000, prop_oneof![Just(0i64), 0i64..60])
                .prop_map(|(at, seconds)| Now::Free { at, seconds }),
            1 => (0u32..1000).prop_map(|at| Now::NoticeEdge { at }),
            1 => (0u32..1000).prop_map(|at| Now::HorizonEdge { at }),
        ],
        prop::collection::vec(any::<u32>(), 0..=12), // appointment starts
    );
    (when, zones, rules, hours, moments).prop_map(build_case)
}

/// A zone's transitions in a year (none for zones without DST), each as the
/// local date and minutes since midnight that its clocks show right after it.
fn transitions(tz: &TimeZone, year: i16) -> Vec<(Date, i16)> {
    let start = jiff::civil::date(year, 1, 1)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp();
    tz.following(start)
        .map(|t| tz.to_datetime(t.timestamp()))
        .take_while(|dt| dt.year() == year)
        .map(|dt| {
            (
                dt.date(),
                i16::from(dt.hour()) * 60 + i16::from(dt.minute()),
            )
        })
        .collect()
}

fn build_case(
    (when, (pz, dz), rules, hours, moments): (When, (usize, usize), Rules, Hours, Moments),
) -> Case {
    let (anchor, year, anchor_at, len) = when;
    let (slot, buffer, notice, horizon) = rules;
    let (week, overrides, transition_steps) = hours;
    let (now_at, busy_at) = moments;

    let (provider, display) = (zone(ZONES[pz]), zone(ZONES[dz]));
    // The anchor date, and the provider's transition on it if there is one.
    let (anchor, provider_transition) = match anchor {
        Anchor::Transition { second, of_display } => {
            // The other zone's transitions if this one has none.
            let mut of_provider = !of_display;
            let pick = |of_provider: bool| if of_provider { &provider } else { &display };
            let mut list = transitions(pick(of_provider).tz(), year);
            if list.is_empty() {
                of_provider = !of_provider;
                list = transitions(pick(of_provider).tz(), year);
            }
            match list.get(usize::from(second)) {
                Some(&(date, wall)) => (date, of_provider.then_some((date, wall))),
                None => (
                    jiff::civil::date(year, if second { 10 } else { 4 }, 1),
                    None,
                ),
            }
        }
        Anchor::Date { month, day } => (jiff::civil::date(year, month, day), None),
    };
    let from = anchor - (len * i64::from(anchor_at) / 1000).days();
    let to = from + (len - 1).days();

    let mut schedule = Schedule::new(provider);
    schedule.slot = SlotMinutes::new(slot).unwrap();
    schedule.buffer = BufferMinutes::new(buffer).unwrap();
    schedule.min_notice = NoticeMinutes::new(notice).unwrap();
    schedule.horizon = HorizonDays::new(horizon).unwrap();
    let mut weekly = WeeklyHours::default();
    for (day, hours) in WEEKDAYS.into_iter().zip(week) {
        weekly.set(day, hours);
    }
    schedule.weekly = weekly;
    for (offset, hours) in overrides {
        schedule
            .overrides
            .insert(from - 3.days() + offset.days(), hours);
    }
    // Intervals that start and end within 90 minutes of the clock change, so
    // they begin or end inside its gap or fold (and, after a fall-back, may
    // overlap once converted).
    if let (Some((date, wall)), Some(steps)) = (provider_transition, transition_steps) {
        let boundaries = steps
            .iter()
            .map(|k| (wall + 15 * k).clamp(0, 1440).unsigned_abs())
            .collect();
        schedule
            .overrides
            .insert(date, hours_from_boundaries(boundaries));
    }

    let base = from.to_zoned(TimeZone::UTC).unwrap().timestamp();
    let now = match now_at {
        Now::Free { at, seconds } => {
            let span_minutes = (len + 3) * 1440;
            base - SignedDuration::from_hours(72)
                + SignedDuration::from_mins(span_minutes * i64::from(at) / 1000)
                + SignedDuration::from_secs(seconds)
        }
        Now::NoticeEdge { at } | Now::HorizonEdge { at } => {
            let before = match now_at {
                Now::NoticeEdge { .. } => schedule.min_notice.duration(),
                _ => schedule.horizon.duration(),
            };
            let grid = Oracle::new(&schedule).grid(from - 1.days(), to + 1.days());
            match grid.get(grid.len() * at as usize / 1000) {
                Some(slot) => slot.start - before,
                None => base,
            }
        }
    };

    // Appointments from two days before the range to two days after it, each
    // one slot long.
    let slot_len = schedule.slot.duration();
    let mut busy: Vec<Busy> = busy_at
        .into_iter()
        .map(|x| {
            let start = base - SignedDuration::from_hours(48)
                + SignedDuration::from_mins(i64::from(x) % ((len + 4) * 1440));
            Busy {
                start,
                end: start + slot_len,
            }
        })
        .collect();
    busy.sort();

    Case {
        schedule,
        display,
        from,
        to,
        busy,
        now,
    }
}

// ---------------------------------------------------------------------------
// Oracle: a date's working time as instant ranges, written from the spec
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    Start,
    End,
}

/// The instant of a wall-clock time (minutes, `1440` = next day's `00:00`) on
/// a local date of `tz`: the only instant if there is one; in a fold the
/// earlier for a start and the later for an end; in a gap the instant the gap
/// ends.
fn instant_of(tz: &TimeZone, date: Date, minutes: u16, edge: Edge) -> Timestamp {
    let dt: DateTime = if minutes == 1440 {
        date.tomorrow().unwrap().at(0, 0, 0, 0)
    } else {
        date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0)
    };
    // Every offset in force within 36 hours of the time is a candidate; those
    // that read back as `dt` give its instants.
    let naive = dt.to_zoned(TimeZone::UTC).unwrap().timestamp();
    let mut offsets: Vec<_> = (-6..=6)
        .map(|k| tz.to_offset(naive + SignedDuration::from_hours(6 * k)))
        .collect();
    offsets.sort();
    offsets.dedup();
    let mut exact: Vec<Timestamp> = offsets
        .iter()
        .map(|o| o.to_timestamp(dt).unwrap())
        .filter(|&t| tz.to_datetime(t) == dt)
        .collect();
    exact.sort();
    match (edge, exact.first(), exact.last()) {
        (Edge::Start, Some(&t), _) | (Edge::End, _, Some(&t)) => t,
        _ => {
            // A gap: the first instant whose wall clock reaches `dt`. Read
            // with the largest offset, `dt` is before the jump; with the
            // smallest, after it. Transitions fall on whole seconds.
            let mut lo = offsets
                .last()
                .unwrap()
                .to_timestamp(dt)
                .unwrap()
                .as_second();
            let mut hi = offsets
                .first()
                .unwrap()
                .to_timestamp(dt)
                .unwrap()
                .as_second();
            let reaches = |s: i64| tz.to_datetime(Timestamp::from_second(s).unwrap()) >= dt;
            assert!(
                !reaches(lo) && reaches(hi),
                "{dt} in {tz:?} is neither a time nor a gap"
            );
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if reaches(mid) { hi = mid } else { lo = mid }
            }
            Timestamp::from_second(hi).unwrap()
        }
    }
}

/// The working time of one local date of the schedule's zone: each interval
/// converted with [`instant_of`], empty ones (both ends in one gap) dropped,
/// ranges that overlap (not merely touch) merged.
fn working_ranges(schedule: &Schedule, date: Date) -> Vec<(Timestamp, Timestamp)> {
    let tz = schedule.zone.tz();
    let mut ranges: Vec<(Timestamp, Timestamp)> = schedule
        .hours_on(date)
        .intervals()
        .iter()
        .map(|i| {
            (
                instant_of(tz, date, i.start().minutes(), Edge::Start),
                instant_of(tz, date, i.end().minutes(), Edge::End),
            )
        })
        .filter(|(s, e)| s < e)
        .collect();
    ranges.sort();
    let mut merged: Vec<(Timestamp, Timestamp)> = Vec::new();
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s < last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Memoised [`working_ranges`] per date.
struct Oracle<'a> {
    schedule: &'a Schedule,
    ranges: HashMap<Date, Vec<(Timestamp, Timestamp)>>,
}

impl<'a> Oracle<'a> {
    fn new(schedule: &'a Schedule) -> Self {
        Self {
            schedule,
            ranges: HashMap::new(),
        }
    }

    fn ranges(&mut self, date: Date) -> &[(Timestamp, Timestamp)] {
        let schedule = self.schedule;
        self.ranges
            .entry(date)
            .or_insert_with(|| working_ranges(schedule, date))
    }

    /// Every grid slot of the provider's local dates `first..=last`: slot *i*
    /// of a range starts *i* slot lengths after the range's start and ends by
    /// the range's end.
    fn grid(&mut self, first: Date, last: Date) -> Vec<Slot> {
        let len = self.schedule.slot.duration();
        let mut out = Vec::new();
        let mut date = first;
        while date <= last {
            for &(rs, re) in self.ranges(date) {
                let mut start = rs;
                while start + len <= re {
                    out.push(Slot {
                        start,
                        end: start + len,
                    });
                    start += len;
                }
            }
            date = date.tomorrow().unwrap();
        }
        out
    }
}

fn all_slots(days: &[DaySlots]) -> impl Iterator<Item = &Slot> {
    days.iter().flat_map(|d| d.slots.iter())
}

fn show(t: Timestamp, zone: &Zone) -> String {
    t.to_zoned(zone.tz().clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    /// Every slot is a grid slot of a working range of its provider-local date
    /// (or, were midnight ever in a fold, the date before): inside the range
    /// and a whole number of slot lengths after its start.
    #[test]
    fn every_slot_lies_on_the_grid_of_a_working_interval(case in case()) {
        let answer = case.answer();
        let len = case.slot_len().as_nanos();
        let mut oracle = Oracle::new(&case.schedule);
        for slot in all_slots(&answer) {
            let local = case.provider_tz().to_datetime(slot.start).date();
            let inside = [local.yesterday().unwrap(), local].into_iter().any(|date| {
                oracle.ranges(date).iter().any(|&(rs, re)| {
                    rs <= slot.start
                        && slot.end <= re
                        && slot.start.duration_since(rs).as_nanos() % len == 0
                })
            });
            prop_assert!(
                inside,
                "{} is in no working interval of {local} ({:?})",
                show(slot.start, &case.schedule.zone),
                oracle.ranges(local),
            );
        }
    }

    /// Across the whole answer slots are strictly increasing and disjoint.
    #[test]
    fn slots_are_increasing_and_never_overlap(case in case()) {
        let answer = case.answer();
        let slots: Vec<&Slot> = all_slots(&answer).collect();
        for pair in slots.windows(2) {
            prop_assert!(pair[0].start < pair[0].end);
            prop_assert!(
                pair[0].end <= pair[1].start,
                "{:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    /// Every slot lasts exactly the slot length in elapsed time, DST or not.
    #[test]
    fn every_slot_lasts_the_slot_length(case in case()) {
        let answer = case.answer();
        for slot in all_slots(&answer) {
            prop_assert_eq!(slot.end.duration_since(slot.start), case.slot_len(), "{:?}", slot);
        }
    }

    /// No slot starts before `now + notice` or after `now + horizon`.
    #[test]
    fn slots_respect_notice_and_horizon(case in case()) {
        let answer = case.answer();
        for slot in all_slots(&answer) {
            prop_assert!(case.in_window(slot.start), "{:?} with now {}", slot, case.now);
        }
    }

    /// No slot, with the buffer after it, meets an appointment with the
    /// buffer after it.
    #[test]
    fn slots_keep_clear_of_appointments_and_buffers(case in case()) {
        let answer = case.answer();
        for slot in all_slots(&answer) {
            prop_assert_eq!(case.clashes(slot), None, "{:?}", slot);
        }
    }

    /// Every asked date appears once, in order, and lists only slots that
    /// start on it in the display zone.
    #[test]
    fn every_date_listed_once_with_its_own_slots(case in case()) {
        let answer = case.answer();
        let mut expected = Vec::new();
        let mut date = case.from;
        while date <= case.to {
            expected.push(date);
            date = date.tomorrow().unwrap();
        }
        let dates: Vec<Date> = answer.iter().map(|d| d.date).collect();
        prop_assert_eq!(dates, expected);
        for day in &answer {
            for slot in &day.slots {
                prop_assert_eq!(case.display_date(slot.start), day.date, "{:?}", slot);
            }
        }
    }

    /// Each offered slot is what `grid_slot_at` says starts there.
    #[test]
    fn offered_slots_are_grid_slots(case in case()) {
        let answer = case.answer();
        for slot in all_slots(&answer) {
            prop_assert_eq!(grid_slot_at(&case.schedule, slot.start), Some(*slot));
        }
    }

    /// No slot is wrongly hidden (1): every slot of the oracle's grid that
    /// passes the rules and starts inside the asked dates is offered, under the
    /// right date.
    #[test]
    fn every_allowed_grid_slot_is_offered(case in case()) {
        let answer = case.answer();
        let offered: HashSet<(Date, Slot)> =
            answer.iter().flat_map(|d| d.slots.iter().map(move |s| (d.date, *s))).collect();
        // Display and provider dates are at most 25 hours apart.
        let mut oracle = Oracle::new(&case.schedule);
        for slot in oracle.grid(case.from - 2.days(), case.to + 2.days()) {
            if case.should_offer(&slot) {
                prop_assert!(
                    offered.contains(&(case.display_date(slot.start), slot)),
                    "{} hidden",
                    show(slot.start, &case.schedule.zone)
                );
            }
        }
    }

    /// No slot is wrongly hidden (2), asking `grid_slot_at` instead of the
    /// oracle: every 5 minutes over a day of the asked range, a grid slot
    /// there that passes the rules is offered.
    #[test]
    fn grid_slots_found_every_five_minutes_are_offered(case in case(), at in 0u32..1000) {
        let answer = case.answer();
        let offered: HashSet<Slot> = all_slots(&answer).copied().collect();
        let start = case.from.to_zoned(case.display.tz().clone()).unwrap().timestamp();
        let end = (case.to + 1.days()).to_zoned(case.display.tz().clone()).unwrap().timestamp();
        // A day-long window somewhere in the range, on the 5-minute grid of
        // the range's start (every zone here is a whole quarter-hour off UTC).
        let steps = end.duration_since(start).as_mins() / 5;
        let first = (steps - 288).max(0) * i64::from(at) / 1000;
        for step in first..(first + 288).min(steps) {
            let t = start + SignedDuration::from_mins(5 * step);
            if let Some(slot) = grid_slot_at(&case.schedule, t) {
                prop_assert_eq!(slot.start, t);
                prop_assert_eq!(slot.end.duration_since(slot.start), case.slot_len());
                if case.should_offer(&slot) {
                    prop_assert!(offered.contains(&slot), "{} hidden", show(t, &case.schedule.zone));
                }
            }
        }
    }
}
