//! Availability over 31 days: the cost of `cita_core::slots::available_slots`
//! for a provider in America/Lima working 09:00–13:00 and 14:00–18:00 every
//! day with 30-minute slots (16 slots a day, 496 in the range), with 0, 500
//! and 5,000 active appointments spread evenly over a year around the range.
//!
//! A fourth case keeps the 500 case's appointments inside the range and adds
//! 4,958 outside it, to show what history outside the range costs on its own.
//!
//! Targets (docs/performance.md): ≤ 50 µs with 500 appointments, and 5,000
//! within 10 % of 500: the generator binary-searches to the range, so
//! appointments outside it should cost nothing.
//!
//! Run: `cargo bench -p cita-core -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};

use cita_core::slots::{
    AvailabilityRequest, Busy, DayHours, LocalInterval, Schedule, WEEKDAYS, WallTime, WeeklyHours,
    Zone, available_slots,
};

/// Thursday 2026-11-19 12:00 UTC (07:00 in Lima): the range starts after it.
fn now() -> Timestamp {
    "2026-11-19T12:00:00Z".parse().expect("an RFC 3339 instant")
}

/// The first date asked; the range is this and the next 30 dates.
const FROM: Date = date(2026, 11, 23);

fn schedule() -> Schedule {
    let wall = |s: &str| WallTime::parse(s).expect("HH:MM");
    let interval = |a, b| LocalInterval::new(wall(a), wall(b)).expect("start before end");
    let day = DayHours::new(vec![interval("09:00", "13:00"), interval("14:00", "18:00")])
        .expect("no overlap");
    let mut weekly = WeeklyHours::default();
    for weekday in WEEKDAYS {
        weekly.set(weekday, day.clone());
    }
    // Defaults otherwise: 30-minute slots, no buffer or notice, 90 days ahead.
    Schedule {
        weekly,
        ..Schedule::new(Zone::parse("America/Lima").expect("a bundled zone"))
    }
}

/// Every slot start of the schedule's grid over a year that begins 90 days
/// before the range, so about 31/365 of any even spread falls inside it.
fn year_of_slot_starts(schedule: &Schedule) -> Vec<Timestamp> {
    let tz = schedule.zone.tz();
    let first = FROM
        .checked_sub(jiff::Span::new().days(90))
        .expect("in range");
    let mut starts = Vec::new();
    for offset in 0..365 {
        let day = first
            .checked_add(jiff::Span::new().days(offset))
            .expect("in range");
        let midnight = day
            .to_zoned(tz.clone())
            .expect("a valid local date")
            .timestamp();
        for interval in schedule.hours_on(day).intervals() {
            // Lima keeps one offset all year, so minutes past midnight suffice.
            let at = |t: WallTime| midnight + SignedDuration::from_mins(i64::from(t.minutes()));
            let (mut start, end) = (at(interval.start()), at(interval.end()));
            while start + schedule.slot.duration() <= end {
                starts.push(start);
                start += schedule.slot.duration();
            }
        }
    }
    starts
}

/// `n` appointments, one slot long, on grid slots spread evenly over the
/// year, sorted by start (the generator's precondition).
fn appointments(schedule: &Schedule, n: usize) -> Vec<Busy> {
    spread(schedule, &year_of_slot_starts(schedule), n)
}

/// `n` appointments, one slot long, on `starts` taken evenly, sorted by start.
fn spread(schedule: &Schedule, starts: &[Timestamp], n: usize) -> Vec<Busy> {
    assert!(n <= starts.len(), "{n} appointments do not fit");
    let mut busy: Vec<Busy> = (0..n)
        .map(|i| {
            let start = starts[i * starts.len() / n];
            Busy {
                start,
                end: start + schedule.slot.duration(),
            }
        })
        .collect();
    busy.sort_unstable();
    busy
}

/// The 31-day question over `busy`, checked once before it is timed.
fn bench_case(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    schedule: &Schedule,
    busy: &[Busy],
) {
    let display = schedule.zone.clone();
    let request = AvailabilityRequest {
        schedule,
        display: &display,
        from: FROM,
        to: to(),
        busy,
        now: now(),
    };
    // The question really covers 31 dates of 16 slots, each appointment
    // inside the range taking exactly one of them (no buffer, on the grid).
    let days = available_slots(&request);
    let offered: usize = days.iter().map(|d| d.slots.len()).sum();
    let window = window();
    let inside = busy.iter().filter(|b| window.contains(&b.start)).count();
    assert_eq!(days.len(), 31);
    assert_eq!(offered, 31 * 16 - inside, "{name}");
    let n = busy.len();
    eprintln!("{name}/{n}: {inside} inside the range, {offered} slots offered");
    group.bench_with_input(BenchmarkId::new(name, n), &request, |b, r| {
        b.iter(|| available_slots(black_box(r)));
    });
}

/// The last date asked.
fn to() -> Date {
    FROM.checked_add(jiff::Span::new().days(30))
        .expect("in range")
}

/// The instants the 31 dates cover in Lima.
fn window() -> std::ops::Range<Timestamp> {
    let lima = jiff::tz::TimeZone::get("America/Lima").expect("a bundled zone");
    let start = FROM.to_zoned(lima.clone()).expect("valid").timestamp();
    let end = to()
        .tomorrow()
        .and_then(|d| d.to_zoned(lima))
        .expect("valid")
        .timestamp();
    start..end
}

fn availability(c: &mut Criterion) {
    let schedule = schedule();
    let mut group = c.benchmark_group("availability_31_days");
    for n in [0usize, 500, 5_000] {
        let busy = appointments(&schedule, n);
        bench_case(&mut group, "appointments", &schedule, &busy);
    }
    // Control: the 500 case's appointments inside the range, plus enough
    // outside it to make 5,000. Against the 500 case this isolates what
    // history outside the range costs, which should be nothing.
    let window = window();
    let mut busy: Vec<Busy> = appointments(&schedule, 500)
        .into_iter()
        .filter(|b| window.contains(&b.start))
        .collect();
    let inside = busy.len();
    let outside: Vec<Timestamp> = year_of_slot_starts(&schedule)
        .into_iter()
        .filter(|s| !window.contains(s))
        .collect();
    busy.extend(spread(&schedule, &outside, 5_000 - inside));
    busy.sort_unstable();
    assert_eq!(busy.len(), 5_000);
    bench_case(&mut group, "appointments_mostly_outside", &schedule, &busy);
    group.finish();
}

criterion_group!(benches, availability);
criterion_main!(benches);
