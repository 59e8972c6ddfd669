//! Slot generation: a pure function of (schedule, display zone, date range,
//! active appointments, now). The semantics are fixed in ARCHITECTURE.md and
//! restated on each function below.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};

use super::models::{MAX_APPOINTMENT, Schedule, WallTime, Zone};

/// A bookable slot `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// When it starts.
    pub start: Timestamp,
    /// When it ends: always `start + slot length` in elapsed time.
    pub end: Timestamp,
}

/// The slots of one date of the display zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySlots {
    /// A local date of the display zone.
    pub date: Date,
    /// The slots starting on that date, in order.
    pub slots: Vec<Slot>,
}

/// Time an active appointment holds: `[start, end)`; the provider's buffer is
/// added after it when slots are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Busy {
    /// When the appointment starts.
    pub start: Timestamp,
    /// When it ends (without buffer).
    pub end: Timestamp,
}

/// One availability question.
#[derive(Debug, Clone, Copy)]
pub struct AvailabilityRequest<'a> {
    /// The provider's schedule.
    pub schedule: &'a Schedule,
    /// The zone whose local dates `from`/`to` are, and by which slots are grouped.
    pub display: &'a Zone,
    /// First date, inclusive.
    pub from: Date,
    /// Last date, inclusive.
    pub to: Date,
    /// The provider's active appointments, **sorted by start**. Only those near
    /// the asked range are looked at (found by binary search), so passing more
    /// costs nothing but the search.
    pub busy: &'a [Busy],
    /// The present instant.
    pub now: Timestamp,
}

type Nanos = i128;

fn ns(ts: Timestamp) -> Nanos {
    ts.as_nanosecond()
}

fn ts(n: Nanos) -> Option<Timestamp> {
    Timestamp::from_nanosecond(n).ok()
}

fn dur_ns(d: jiff::SignedDuration) -> Nanos {
    d.as_nanos()
}

/// Whether a converted wall-clock time is an interval's start or end: inside a
/// fall-back overlap a start takes the earlier instant and an end the later
/// one, so an interval never loses real time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    Start,
    End,
}

/// Converts a local date and wall-clock time of `tz` to an instant.
///
/// `24:00` is the next day's `00:00`. A time inside a DST gap maps to the
/// instant the gap ends (the transition); inside an overlap, a start takes the
/// earlier instant and an end the later one.
fn to_instant(tz: &TimeZone, date: Date, time: WallTime, edge: Edge) -> Option<Nanos> {
    let (date, minutes) = if time == WallTime::END_OF_DAY {
        (date.tomorrow().ok()?, 0)
    } else {
        (date, time.minutes())
    };
    let hour = i8::try_from(minutes / 60).ok()?;
    let minute = i8::try_from(minutes % 60).ok()?;
    let dt = date.at(hour, minute, 0, 0);
    let instant = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok()?,
        AmbiguousOffset::Gap { before, after } => {
            // Read with the later offset, the time lands just before the
            // transition; the next transition is the gap's end.
            let probe = after.to_timestamp(dt).ok()?;
            match tz.following(probe).next() {
                Some(t) => t.timestamp(),
                None => before.to_timestamp(dt).ok()?,
            }
        }
        AmbiguousOffset::Fold { before, after } => match edge {
            Edge::Start => before.to_timestamp(dt).ok()?,
            Edge::End => after.to_timestamp(dt).ok()?,
        },
    };
    Some(ns(instant))
}

/// The working time of one local date of the schedule's zone as instant
/// ranges, sorted, with ranges that overlap after conversion (only possible
/// around a fall-back) merged. Appends to `out`.
fn working_ranges(schedule: &Schedule, date: Date, out: &mut Vec<(Nanos, Nanos)>) {
    let tz = schedule.zone.tz();
    let first = out.len();
    for interval in schedule.hours_on(date).intervals() {
        let (Some(s), Some(e)) = (
            to_instant(tz, date, interval.start(), Edge::Start),
            to_instant(tz, date, interval.end(), Edge::End),
        ) else {
            continue;
        };
        if s >= e {
            // Both ends fell in one gap: no real time at all.
            continue;
        }
        match out[first..].last_mut() {
            Some(last) if s < last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
}

/// Calls `f` with every grid slot (`start`, `end` in ns) of the given local
/// dates of the schedule's zone, in increasing order: slot *i* of a working
/// range starts at `range_start + i × slot_length` and is offered only if it
/// ends by the range's end.
fn for_each_grid_slot(
    schedule: &Schedule,
    first_date: Date,
    last_date: Date,
    lower: Nanos,
    mut f: impl FnMut(Nanos, Nanos),
) {
    let slot = dur_ns(schedule.slot.duration());
    let mut ranges = Vec::with_capacity(4);
    let mut date = first_date;
    while date <= last_date {
        ranges.clear();
        working_ranges(schedule, date, &mut ranges);
        for &(rs, re) in &ranges {
            // Skip straight to the first slot that could start at or after `lower`.
            let skip = if lower > rs { (lower - rs) / slot } else { 0 };
            let mut s = rs + skip * slot;
            while s + slot <= re {
                f(s, s + slot);
                s += slot;
            }
        }
        match date.tomorrow() {
            Ok(d) => date = d,
            Err(_) => break,
        }
    }
}

fn local_date(tz: &TimeZone, at: Nanos) -> Option<Date> {
    let t = ts(at)?;
    Some(tz.to_offset(t).to_datetime(t).date())
}

/// The first instant of a local date in `tz` (the gap's end if midnight is skipped).
fn start_of_day(tz: &TimeZone, date: Date) -> Option<Nanos> {
    to_instant(tz, date, WallTime::MIDNIGHT, Edge::Start)
}

/// Tracks a zone's offset across increasing instants, looking the zone up only
/// when a transition is crossed.
struct OffsetCursor<'a> {
    tz: &'a TimeZone,
    offset: Offset,
    valid_from: Nanos,
    valid_until: Nanos,
}

impl<'a> OffsetCursor<'a> {
    fn new(tz: &'a TimeZone) -> Self {
        Self {
            tz,
            offset: Offset::UTC,
            valid_from: 1,
            valid_until: 0,
        }
    }

    /// The local date of `at` in the zone.
    fn date(&mut self, at: Nanos) -> Option<Date> {
        let t = ts(at)?;
        if at < self.valid_from || at >= self.valid_until {
            self.offset = self.tz.to_offset(t);
            self.valid_from = at;
            self.valid_until = self
                .tz
                .following(t)
                .next()
                .map_or(Nanos::MAX, |tr| ns(tr.timestamp()));
        }
        Some(self.offset.to_datetime(t).date())
    }
}

/// The free slots of a schedule, grouped by the display zone's local dates.
///
/// Every date from `from` to `to` appears once, in order, even with no slots. A
/// slot is offered when it is on the schedule's grid, `now + min_notice ≤ start
/// ≤ now + horizon`, and `[start, end + buffer)` overlaps no busy
/// `[start, end + buffer)` (the schedule's current buffer on both sides).
/// Cost grows with the number of dates and the appointments among them, never
/// with the length of `busy` beyond a binary search.
pub fn available_slots(req: &AvailabilityRequest<'_>) -> Vec<DaySlots> {
    let mut days: Vec<DaySlots> = Vec::new();
    let mut d = req.from;
    while d <= req.to {
        days.push(DaySlots {
            date: d,
            slots: Vec::new(),
        });
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    let schedule = req.schedule;
    let display = req.display.tz();
    let provider_tz = schedule.zone.tz();

    // The instants the question covers, cut to what notice and horizon allow.
    let Some(window_start) = start_of_day(display, req.from) else {
        return days;
    };
    let Some(window_end) = req
        .to
        .tomorrow()
        .ok()
        .and_then(|d| start_of_day(display, d))
    else {
        return days;
    };
    let now = ns(req.now);
    let earliest = now + dur_ns(schedule.min_notice.duration());
    let latest = now + dur_ns(schedule.horizon.duration());
    let lower = window_start.max(earliest);
    let upper = window_end.min(latest + 1); // starts must be < upper
    if lower >= upper {
        return days;
    }
    let (Some(first_date), Some(last_date)) = (
        local_date(provider_tz, lower).and_then(|d| d.yesterday().ok()),
        local_date(provider_tz, upper),
    ) else {
        return days;
    };

    let slot_len = dur_ns(schedule.slot.duration());
    let buffer = dur_ns(schedule.buffer.duration());
    // A busy range can reach `lower` only if it starts after this.
    let reach = dur_ns(MAX_APPOINTMENT) + buffer + slot_len + buffer;
    let mut next_busy = req.busy.partition_point(|b| ns(b.start) < lower - reach);
    let busy = req.busy;

    let mut cursor = OffsetCursor::new(display);
    let mut day_index = 0usize;
    for_each_grid_slot(schedule, first_date, last_date, lower, |s, e| {
        if s < lower || s >= upper {
            return;
        }
        // Busy ranges that end (with buffer) before this slot can be dropped:
        // slots only move forward. Ranges are sorted by start, not end, so only
        // the leading ones are dropped; the scan below checks the rest.
        while next_busy < busy.len() && ns(busy[next_busy].start) + reach <= s {
            next_busy += 1;
        }
        let blocked_until = e + buffer;
        let mut j = next_busy;
        while j < busy.len() {
            let b = busy[j];
            let (bs, be) = (ns(b.start), ns(b.end) + buffer);
            if bs >= blocked_until {
                break;
            }
            if be > s {
                return;
            }
            j += 1;
        }
        let Some(date) = cursor.date(s) else { return };
        // Dates only move forward except across a fall-back at midnight.
        while day_index + 1 < days.len() && days[day_index].date < date {
            day_index += 1;
        }
        let idx = if days[day_index].date == date {
            day_index
        } else {
            match days.iter().position(|d| d.date == date) {
                Some(i) => i,
                None => return,
            }
        };
        if let (Some(start), Some(end)) = (ts(s), ts(e)) {
            days[idx].slots.push(Slot { start, end });
        }
    });
    days
}

/// The grid slot of the schedule starting exactly at `start`, if there is one
/// (ignoring notice, horizon and appointments): the booking rule "not a slot
/// start of the schedule's grid on that date".
pub fn grid_slot_at(schedule: &Schedule, start: Timestamp) -> Option<Slot> {
    let at = ns(start);
    let date = local_date(schedule.zone.tz(), at)?;
    let mut found = None;
    for_each_grid_slot(schedule, date.yesterday().ok()?, date, at, |s, e| {
        if s == at && found.is_none() {
            found = Some((s, e));
        }
    });
    let (s, e) = found?;
    Some(Slot {
        start: ts(s)?,
        end: ts(e)?,
    })
}
