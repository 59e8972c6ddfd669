//! Worked examples of slot generation with exact expected answers: the
//! America/Santiago clock changes of 2026, Berlin in winter and summer,
//! intervals ending at 24:00, overrides, buffers, notice and horizon
//! boundaries, grouping across the date line, and `grid_slot_at`.
//!
//! Every expected slot is written out as an RFC 3339 start in the display
//! zone, under the display date it is listed for; the helpers also check that
//! every slot lasts exactly the slot length.

use cita_core::slots::{
    AvailabilityRequest, BufferMinutes, Busy, DayHours, HorizonDays, LocalInterval, NoticeMinutes,
    Schedule, Slot, SlotMinutes, WEEKDAYS, WallTime, WeeklyHours, Zone, available_slots,
    grid_slot_at,
};
use jiff::civil::{Date, Weekday};
use jiff::{SignedDuration, Timestamp};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn zone(name: &str) -> Zone {
    Zone::parse(name).expect("a zone of the bundled database")
}

fn day(s: &str) -> Date {
    s.parse().expect("YYYY-MM-DD")
}

/// An instant from RFC 3339 text with an offset.
fn at(s: &str) -> Timestamp {
    s.parse().expect("RFC 3339 with an offset")
}

/// One day's hours from `("HH:MM", "HH:MM")` pairs; no pairs = closed.
fn hours(spans: &[(&str, &str)]) -> DayHours {
    DayHours::new(
        spans
            .iter()
            .map(|(s, e)| {
                LocalInterval::new(WallTime::parse(s).unwrap(), WallTime::parse(e).unwrap())
                    .unwrap()
            })
            .collect(),
    )
    .unwrap()
}

/// The same hours on the given weekdays, every other day closed.
fn weekly(days: &[Weekday], spans: &[(&str, &str)]) -> WeeklyHours {
    days.iter()
        .fold(WeeklyHours::default(), |w, &d| w.with(d, hours(spans)))
}

const MON_TO_FRI: [Weekday; 5] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];

/// A schedule with the given slot length and hours, no buffer, no notice and
/// a year of horizon, so only what a test sets matters.
fn schedule(zone_name: &str, slot_minutes: u32, weekly: WeeklyHours) -> Schedule {
    let mut s = Schedule::new(zone(zone_name));
    s.slot = SlotMinutes::new(slot_minutes).unwrap();
    s.horizon = HorizonDays::new(365).unwrap();
    s.weekly = weekly;
    s
}

/// Far enough before every example that notice and horizon hide nothing.
const EARLY: &str = "2026-01-01T00:00:00Z";

/// The answer as `(display date, [RFC 3339 start in the display zone])`,
/// after checking that every slot lasts exactly the schedule's slot length.
fn offered(
    schedule: &Schedule,
    display: &str,
    (from, to): (&str, &str),
    busy: &[Busy],
    now: &str,
) -> Vec<(String, Vec<String>)> {
    let display = zone(display);
    let answer = available_slots(&AvailabilityRequest {
        schedule,
        display: &display,
        from: day(from),
        to: day(to),
        busy,
        now: at(now),
    });
    answer
        .iter()
        .map(|d| {
            for slot in &d.slots {
                assert_eq!(
                    slot.end.duration_since(slot.start),
                    schedule.slot.duration(),
                    "{slot:?} does not last the slot length"
                );
            }
            let starts = d.slots.iter().map(|s| rfc3339(s.start, &display)).collect();
            (d.date.to_string(), starts)
        })
        .collect()
}

fn rfc3339(t: Timestamp, zone: &Zone) -> String {
    t.to_zoned(zone.tz().clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn expect(days: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    days.iter()
        .map(|(d, starts)| {
            (
                d.to_string(),
                starts.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// America/Santiago, 2026
// ---------------------------------------------------------------------------

/// Checks, with jiff's database, the clock changes the Santiago examples rely
/// on: DST ends at 24:00 on Saturday 2026-04-04 (clocks go back to 23:00, so
/// 23:00–24:00 happens twice) and starts at 24:00 on Saturday 2026-09-05
/// (clocks jump to 01:00 on Sunday, so Sunday 00:00–01:00 never happens).
fn assert_santiago_2026_clock_changes() {
    let tz = zone("America/Santiago");
    let tz = tz.tz();
    let changes: Vec<Timestamp> = tz
        .following(at("2026-01-01T00:00:00Z"))
        .map(|t| t.timestamp())
        .take_while(|&t| t < at("2027-01-01T00:00:00Z"))
        .collect();
    assert_eq!(
        changes,
        [at("2026-04-05T03:00:00Z"), at("2026-09-06T04:00:00Z")]
    );
    let just_before = |t: Timestamp| tz.to_datetime(t - SignedDuration::from_nanos(1));

    let fall_back = changes[0];
    assert_eq!(
        just_before(fall_back).to_string(),
        "2026-04-04T23:59:59.999999999"
    );
    assert_eq!(tz.to_datetime(fall_back).to_string(), "2026-04-04T23:00:00");
    assert_eq!(day("2026-04-05").weekday(), Weekday::Sunday);

    let spring_forward = changes[1];
    assert_eq!(
        just_before(spring_forward).to_string(),
        "2026-09-05T23:59:59.999999999"
    );
    assert_eq!(
        tz.to_datetime(spring_forward).to_string(),
        "2026-09-06T01:00:00"
    );
    assert_eq!(day("2026-09-06").weekday(), Weekday::Sunday);
}

#[test]
fn santiago_2026_clock_changes_are_where_the_examples_expect() {
    assert_santiago_2026_clock_changes();
}

/// A provider working the same hours every day of the week.
fn santiago_daily(slot_minutes: u32, start: &str, end: &str) -> Schedule {
    schedule(
        "America/Santiago",
        slot_minutes,
        weekly(&WEEKDAYS, &[(start, end)]),
    )
}

const FALL_BACK_DAYS: (&str, &str) = ("2026-04-04", "2026-04-06");
const SPRING_FORWARD_DAYS: (&str, &str) = ("2026-09-05", "2026-09-07");

#[test]
fn santiago_09_to_18_keeps_its_wall_clock_hours_across_both_changes() {
    assert_santiago_2026_clock_changes();
    let s = santiago_daily(60, "09:00", "18:00");
    // Same local hours each day; only the offset changes.
    assert_eq!(
        offered(&s, "America/Santiago", FALL_BACK_DAYS, &[], EARLY),
        expect(&[
            (
                "2026-04-04",
                &[
                    "2026-04-04T09:00:00-03:00",
                    "2026-04-04T10:00:00-03:00",
                    "2026-04-04T11:00:00-03:00",
                    "2026-04-04T12:00:00-03:00",
                    "2026-04-04T13:00:00-03:00",
                    "2026-04-04T14:00:00-03:00",
                    "2026-04-04T15:00:00-03:00",
                    "2026-04-04T16:00:00-03:00",
                    "2026-04-04T17:00:00-03:00",
                ],
            ),
            (
                "2026-04-05",
                &[
                    "2026-04-05T09:00:00-04:00",
                    "2026-04-05T10:00:00-04:00",
                    "2026-04-05T11:00:00-04:00",
                    "2026-04-05T12:00:00-04:00",
                    "2026-04-05T13:00:00-04:00",
                    "2026-04-05T14:00:00-04:00",
                    "2026-04-05T15:00:00-04:00",
                    "2026-04-05T16:00:00-04:00",
                    "2026-04-05T17:00:00-04:00",
                ],
            ),
            (
                "2026-04-06",
                &[
                    "2026-04-06T09:00:00-04:00",
                    "2026-04-06T10:00:00-04:00",
                    "2026-04-06T11:00:00-04:00",
                    "2026-04-06T12:00:00-04:00",
                    "2026-04-06T13:00:00-04:00",
                    "2026-04-06T14:00:00-04:00",
                    "2026-04-06T15:00:00-04:00",
                    "2026-04-06T16:00:00-04:00",
                    "2026-04-06T17:00:00-04:00",
                ],
            ),
        ])
    );
    assert_eq!(
        offered(&s, "America/Santiago", SPRING_FORWARD_DAYS, &[], EARLY),
        expect(&[
            (
                "2026-09-05",
                &[
                    "2026-09-05T09:00:00-04:00",
                    "2026-09-05T10:00:00-04:00",
                    "2026-09-05T11:00:00-04:00",
                    "2026-09-05T12:00:00-04:00",
                    "2026-09-05T13:00:00-04:00",
                    "2026-09-05T14:00:00-04:00",
                    "2026-09-05T15:00:00-04:00",
                    "2026-09-05T16:00:00-04:00",
                    "2026-09-05T17:00:00-04:00",
                ],
            ),
            (
                "2026-09-06",
                &[
                    "2026-09-06T09:00:00-03:00",
                    "2026-09-06T10:00:00-03:00",
                    "2026-09-06T11:00:00-03:00",
                    "2026-09-06T12:00:00-03:00",
                    "2026-09-06T13:00:00-03:00",
                    "2026-09-06T14:00:00-03:00",
                    "2026-09-06T15:00:00-03:00",
                    "2026-09-06T16:00:00-03:00",
                    "2026-09-06T17:00:00-03:00",
                ],
            ),
            (
                "2026-09-07",
                &[
                    "2026-09-07T09:00:00-03:00",
                    "2026-09-07T10:00:00-03:00",
                    "2026-09-07T11:00:00-03:00",
                    "2026-09-07T12:00:00-03:00",
                    "2026-09-07T13:00:00-03:00",
                    "2026-09-07T14:00:00-03:00",
                    "2026-09-07T15:00:00-03:00",
                    "2026-09-07T16:00:00-03:00",
                    "2026-09-07T17:00:00-03:00",
                ],
            ),
        ])
    );
}

#[test]
fn santiago_13_to_19_keeps_its_wall_clock_hours_across_both_changes() {
    assert_santiago_2026_clock_changes();
    let s = santiago_daily(60, "13:00", "19:00");
    assert_eq!(
        offered(&s, "America/Santiago", FALL_BACK_DAYS, &[], EARLY),
        expect(&[
            (
                "2026-04-04",
                &[
                    "2026-04-04T13:00:00-03:00",
                    "2026-04-04T14:00:00-03:00",
                    "2026-04-04T15:00:00-03:00",
                    "2026-04-04T16:00:00-03:00",
                    "2026-04-04T17:00:00-03:00",
                    "2026-04-04T18:00:00-03:00",
                ],
            ),
            (
                "2026-04-05",
                &[
                    "2026-04-05T13:00:00-04:00",
                    "2026-04-05T14:00:00-04:00",
                    "2026-04-05T15:00:00-04:00",
                    "2026-04-05T16:00:00-04:00",
                    "2026-04-05T17:00:00-04:00",
                    "2026-04-05T18:00:00-04:00",
                ],
            ),
            (
                "2026-04-06",
                &[
                    "2026-04-06T13:00:00-04:00",
                    "2026-04-06T14:00:00-04:00",
                    "2026-04-06T15:00:00-04:00",
                    "2026-04-06T16:00:00-04:00",
                    "2026-04-06T17:00:00-04:00",
                    "2026-04-06T18:00:00-04:00",
                ],
            ),
        ])
    );
    assert_eq!(
        offered(&s, "America/Santiago", SPRING_FORWARD_DAYS, &[], EARLY),
        expect(&[
            (
                "2026-09-05",
                &[
                    "2026-09-05T13:00:00-04:00",
                    "2026-09-05T14:00:00-04:00",
                    "2026-09-05T15:00:00-04:00",
                    "2026-09-05T16:00:00-04:00",
                    "2026-09-05T17:00:00-04:00",
                    "2026-09-05T18:00:00-04:00",
                ],
            ),
            (
                "2026-09-06",
                &[
                    "2026-09-06T13:00:00-03:00",
                    "2026-09-06T14:00:00-03:00",
                    "2026-09-06T15:00:00-03:00",
                    "2026-09-06T16:00:00-03:00",
                    "2026-09-06T17:00:00-03:00",
                    "2026-09-06T18:00:00-03:00",
                ],
            ),
            (
                "2026-09-07",
                &[
                    "2026-09-07T13:00:00-03:00",
                    "2026-09-07T14:00:00-03:00",
                    "2026-09-07T15:00:00-03:00",
                    "2026-09-07T16:00:00-03:00",
                    "2026-09-07T17:00:00-03:00",
                    "2026-09-07T18:00:00-03:00",
                ],
            ),
        ])
    );
}

#[test]
fn santiago_00_to_03_starts_at_the_end_of_the_spring_forward_gap() {
    assert_santiago_2026_clock_changes();
    let s = santiago_daily(60, "00:00", "03:00");
    // Sunday 09-06 00:00 does not exist: the interval starts when the gap ends,
    // 01:00 -03, and holds two real hours, so two slots.
    assert_eq!(
        offered(&s, "America/Santiago", SPRING_FORWARD_DAYS, &[], EARLY),
        expect(&[
            (
                "2026-09-05",
                &[
                    "2026-09-05T00:00:00-04:00",
                    "2026-09-05T01:00:00-04:00",
                    "2026-09-05T02:00:00-04:00",
                ],
            ),
            (
                "2026-09-06",
                &["2026-09-06T01:00:00-03:00", "2026-09-06T02:00:00-03:00"],
            ),
            (
                "2026-09-07",
                &[
                    "2026-09-07T00:00:00-03:00",
                    "2026-09-07T01:00:00-03:00",
                    "2026-09-07T02:00:00-03:00",
                ],
            ),
        ])
    );
    // The repeated hour is Saturday 23:00–24:00, so Sunday 00:00–03:00 is an
    // ordinary three hours on both sides of the fall-back.
    assert_eq!(
        offered(&s, "America/Santiago", FALL_BACK_DAYS, &[], EARLY),
        expect(&[
            (
                "2026-04-04",
                &[
                    "2026-04-04T00:00:00-03:00",
                    "2026-04-04T01:00:00-03:00",
                    "2026-04-04T02:00:00-03:00",
                ],
            ),
            (
                "2026-04-05",
                &[
                    "2026-04-05T00:00:00-04:00",
                    "2026-04-05T01:00:00-04:00",
                    "2026-04-05T02:00:00-04:00",
                ],
            ),
            (
                "2026-04-06",
                &[
                    "2026-04-06T00:00:00-04:00",
                    "2026-04-06T01:00:00-04:00",
                    "2026-04-06T02:00:00-04:00",
                ],
            ),
        ])
    );
}

#[test]
fn santiago_22_to_24_tiles_the_repeated_hour_in_real_time() {
    assert_santiago_2026_clock_changes();
    let s = santiago_daily(45, "22:00", "24:00");
    // Saturday 04-04 22:00 -03 (01:00Z) to 24:00, which is Sunday 00:00 -04
    // (04:00Z): three real hours, since 23:00–24:00 happens twice. 45-minute
    // slots tile it in elapsed time, so the wall clock reads 23:30 then 23:15,
    // and no slot is shortened or stretched by the change.
    let answer = offered(&s, "America/Santiago", FALL_BACK_DAYS, &[], EARLY);
    assert_eq!(
        answer,
        expect(&[
            (
                "2026-04-04",
                &[
                    "2026-04-04T22:00:00-03:00",
                    "2026-04-04T22:45:00-03:00",
                    "2026-04-04T23:30:00-03:00",
                    "2026-04-04T23:15:00-04:00",
                ],
            ),
            (
                "2026-04-05",
                &["2026-04-05T22:00:00-04:00", "2026-04-05T22:45:00-04:00"],
            ),
            (
                "2026-04-06",
                &["2026-04-06T22:00:00-04:00", "2026-04-06T22:45:00-04:00"],
            ),
        ])
    );
    // The last slot ends exactly at the interval's end, Sunday 00:00 -04.
    assert_eq!(
        grid_slot_at(&s, at("2026-04-04T23:15:00-04:00")).map(|slot| slot.end),
        Some(at("2026-04-05T00:00:00-04:00"))
    );

    // Saturday 09-05 24:00 falls in the gap, so the interval ends when the gap
    // ends, 01:00 -03 (04:00Z): two real hours, two 45-minute slots.
    assert_eq!(
        offered(&s, "America/Santiago", SPRING_FORWARD_DAYS, &[], EARLY),
        expect(&[
            (
                "2026-09-05",
                &["2026-09-05T22:00:00-04:00", "2026-09-05T22:45:00-04:00"],
            ),
            (
                "2026-09-06",
                &["2026-09-06T22:00:00-03:00", "2026-09-06T22:45:00-03:00"],
            ),
            (
                "2026-09-07",
                &["2026-09-07T22:00:00-03:00", "2026-09-07T22:45:00-03:00"],
            ),
        ])
    );
}

// ---------------------------------------------------------------------------
// Europe/Berlin, winter and summer
// ---------------------------------------------------------------------------

#[test]
fn berlin_offers_the_same_local_times_at_different_instants_in_winter_and_summer() {
    let s = schedule(
        "Europe/Berlin",
        30,
        weekly(&MON_TO_FRI, &[("09:00", "17:00")]),
    );
    assert_eq!(day("2026-01-15").weekday(), Weekday::Thursday);
    assert_eq!(day("2026-07-15").weekday(), Weekday::Wednesday);
    let local = [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00", "12:30", "13:00", "13:30",
        "14:00", "14:30", "15:00", "15:30", "16:00", "16:30",
    ];
    // Berlin is UTC+1 in January and UTC+2 (CEST) in July.
    let january_utc = [
        "2026-01-15T08:00:00Z",
        "2026-01-15T08:30:00Z",
        "2026-01-15T09:00:00Z",
        "2026-01-15T09:30:00Z",
        "2026-01-15T10:00:00Z",
        "2026-01-15T10:30:00Z",
        "2026-01-15T11:00:00Z",
        "2026-01-15T11:30:00Z",
        "2026-01-15T12:00:00Z",
        "2026-01-15T12:30:00Z",
        "2026-01-15T13:00:00Z",
        "2026-01-15T13:30:00Z",
        "2026-01-15T14:00:00Z",
        "2026-01-15T14:30:00Z",
        "2026-01-15T15:00:00Z",
        "2026-01-15T15:30:00Z",
    ];
    let july_utc = [
        "2026-07-15T07:00:00Z",
        "2026-07-15T07:30:00Z",
        "2026-07-15T08:00:00Z",
        "2026-07-15T08:30:00Z",
        "2026-07-15T09:00:00Z",
        "2026-07-15T09:30:00Z",
        "2026-07-15T10:00:00Z",
        "2026-07-15T10:30:00Z",
        "2026-07-15T11:00:00Z",
        "2026-07-15T11:30:00Z",
        "2026-07-15T12:00:00Z",
        "2026-07-15T12:30:00Z",
        "2026-07-15T13:00:00Z",
        "2026-07-15T13:30:00Z",
        "2026-07-15T14:00:00Z",
        "2026-07-15T14:30:00Z",
    ];
    let berlin = zone("Europe/Berlin");
    for (date, utc) in [("2026-01-15", january_utc), ("2026-07-15", july_utc)] {
        let answer = available_slots(&AvailabilityRequest {
            schedule: &s,
            display: &berlin,
            from: day(date),
            to: day(date),
            busy: &[],
            now: at(EARLY),
        });
        let slots = &answer[0].slots;
        let wall: Vec<String> = slots
            .iter()
            .map(|x| {
                x.start
                    .to_zoned(berlin.tz().clone())
                    .strftime("%H:%M")
                    .to_string()
            })
            .collect();
        assert_eq!(wall, local, "{date}");
        let instants: Vec<String> = slots.iter().map(|x| x.start.to_string()).collect();
        assert_eq!(instants, utc, "{date}");
        assert!(
            slots
                .iter()
                .all(|x| x.end.duration_since(x.start) == SignedDuration::from_mins(30))
        );
    }
}

// ---------------------------------------------------------------------------
// Hours, overrides, buffers, notice, horizon (America/Lima: UTC-5, no DST)
// ---------------------------------------------------------------------------

/// Monday 2026-06-01 starts the week these examples use.
const MONDAY: &str = "2026-06-01";

#[test]
fn an_interval_ending_at_24_00_offers_its_last_slot_up_to_midnight() {
    assert_eq!(day(MONDAY).weekday(), Weekday::Monday);
    let s = schedule(
        "America/Lima",
        60,
        weekly(&[Weekday::Monday], &[("20:00", "24:00")]),
    );
    assert_eq!(
        offered(&s, "America/Lima", (MONDAY, MONDAY), &[], EARLY),
        expect(&[(
            "2026-06-01",
            &[
                "2026-06-01T20:00:00-05:00",
                "2026-06-01T21:00:00-05:00",
                "2026-06-01T22:00:00-05:00",
                "2026-06-01T23:00:00-05:00",
            ],
        )])
    );
    assert_eq!(
        grid_slot_at(&s, at("2026-06-01T23:00:00-05:00")),
        Some(Slot {
            start: at("2026-06-01T23:00:00-05:00"),
            end: at("2026-06-02T00:00:00-05:00"),
        })
    );
    // In UTC the same slots all start on Tuesday (01:00Z–04:00Z).
    assert_eq!(
        offered(&s, "UTC", ("2026-06-01", "2026-06-02"), &[], EARLY),
        expect(&[
            ("2026-06-01", &[]),
            (
                "2026-06-02",
                &[
                    "2026-06-02T01:00:00+00:00",
                    "2026-06-02T02:00:00+00:00",
                    "2026-06-02T03:00:00+00:00",
                    "2026-06-02T04:00:00+00:00",
                ],
            ),
        ])
    );
}

#[test]
fn touching_intervals_are_tiled_separately() {
    // 09:00–10:00 and 10:00–11:00 are two intervals, not one of two hours:
    // each holds one 45-minute slot, from its own start.
    let s = schedule(
        "America/Lima",
        45,
        weekly(
            &[Weekday::Monday],
            &[("09:00", "10:00"), ("10:00", "11:00")],
        ),
    );
    assert_eq!(
        offered(&s, "America/Lima", (MONDAY, MONDAY), &[], EARLY),
        expect(&[(
            "2026-06-01",
            &["2026-06-01T09:00:00-05:00", "2026-06-01T10:00:00-05:00"],
        )])
    );
}

#[test]
fn overrides_close_a_day_or_replace_its_hours() {
    let mut s = schedule(
        "America/Lima",
        60,
        weekly(&MON_TO_FRI, &[("09:00", "12:00")]),
    );
    s.overrides.insert(day("2026-06-03"), DayHours::closed()); // Wednesday
    s.overrides
        .insert(day("2026-06-04"), hours(&[("14:00", "16:00")])); // Thursday
    s.overrides
        .insert(day("2026-06-06"), hours(&[("10:00", "11:00")])); // Saturday, normally closed
    assert_eq!(
        offered(&s, "America/Lima", ("2026-06-02", "2026-06-07"), &[], EARLY),
        expect(&[
            (
                "2026-06-02",
                &[
                    "2026-06-02T09:00:00-05:00",
                    "2026-06-02T10:00:00-05:00",
                    "2026-06-02T11:00:00-05:00",
                ],
            ),
            ("2026-06-03", &[]),
            (
                "2026-06-04",
                &["2026-06-04T14:00:00-05:00", "2026-06-04T15:00:00-05:00"],
            ),
            (
                "2026-06-05",
                &[
                    "2026-06-05T09:00:00-05:00",
                    "2026-06-05T10:00:00-05:00",
                    "2026-06-05T11:00:00-05:00",
                ],
            ),
            ("2026-06-06", &["2026-06-06T10:00:00-05:00"]),
            ("2026-06-07", &[]),
        ])
    );
}

#[test]
fn a_buffer_hides_the_neighbours_of_an_appointment_on_both_sides() {
    let mut s = schedule(
        "America/Lima",
        30,
        weekly(&[Weekday::Monday], &[("09:00", "13:00")]),
    );
    s.buffer = BufferMinutes::new(15).unwrap();
    // The appointment holds [10:00, 10:45) with its buffer. 09:30 + 30 + 15
    // reaches 10:15, so 09:30 is hidden; 10:30 starts inside 10:45, hidden;
    // 09:00 (held until 09:45) and 11:00 stay.
    let busy = [Busy {
        start: at("2026-06-01T10:00:00-05:00"),
        end: at("2026-06-01T10:30:00-05:00"),
    }];
    assert_eq!(
        offered(&s, "America/Lima", (MONDAY, MONDAY), &busy, EARLY),
        expect(&[(
            "2026-06-01",
            &[
                "2026-06-01T09:00:00-05:00",
                "2026-06-01T11:00:00-05:00",
                "2026-06-01T11:30:00-05:00",
                "2026-06-01T12:00:00-05:00",
                "2026-06-01T12:30:00-05:00",
            ],
        )])
    );
}

#[test]
fn min_notice_is_inclusive() {
    let mut s = schedule(
        "America/Lima",
        60,
        weekly(&[Weekday::Monday], &[("09:00", "13:00")]),
    );
    s.min_notice = NoticeMinutes::new(120).unwrap();
    // now + 2 h is exactly 10:00: the 10:00 slot is offered.
    assert_eq!(
        offered(
            &s,
            "America/Lima",
            (MONDAY, MONDAY),
            &[],
            "2026-06-01T08:00:00-05:00"
        ),
        expect(&[(
            "2026-06-01",
            &[
                "2026-06-01T10:00:00-05:00",
                "2026-06-01T11:00:00-05:00",
                "2026-06-01T12:00:00-05:00",
            ],
        )])
    );
    // One second later it is not.
    assert_eq!(
        offered(
            &s,
            "America/Lima",
            (MONDAY, MONDAY),
            &[],
            "2026-06-01T08:00:01-05:00"
        ),
        expect(&[(
            "2026-06-01",
            &["2026-06-01T11:00:00-05:00", "2026-06-01T12:00:00-05:00"],
        )])
    );
}

#[test]
fn horizon_is_inclusive() {
    let mut s = schedule(
        "America/Lima",
        60,
        weekly(&MON_TO_FRI, &[("09:00", "13:00")]),
    );
    s.horizon = HorizonDays::new(1).unwrap();
    // now is Monday 10:00 with no notice: Monday's 10:00 (= now) is the first
    // slot and Tuesday's 10:00 (= now + 24 h) the last.
    assert_eq!(
        offered(
            &s,
            "America/Lima",
            (MONDAY, "2026-06-03"),
            &[],
            "2026-06-01T10:00:00-05:00"
        ),
        expect(&[
            (
                "2026-06-01",
                &[
                    "2026-06-01T10:00:00-05:00",
                    "2026-06-01T11:00:00-05:00",
                    "2026-06-01T12:00:00-05:00",
                ],
            ),
            (
                "2026-06-02",
                &["2026-06-02T09:00:00-05:00", "2026-06-02T10:00:00-05:00"],
            ),
            ("2026-06-03", &[]),
        ])
    );
    // One second earlier, Tuesday's 10:00 is past the horizon.
    assert_eq!(
        offered(
            &s,
            "America/Lima",
            ("2026-06-02", "2026-06-02"),
            &[],
            "2026-06-01T09:59:59-05:00"
        ),
        expect(&[("2026-06-02", &["2026-06-02T09:00:00-05:00"])])
    );
}

// ---------------------------------------------------------------------------
// Display zone across the date line
// ---------------------------------------------------------------------------

#[test]
fn slots_are_grouped_by_the_display_zones_dates_across_the_date_line() {
    // Pago Pago is UTC-11 and Kiritimati UTC+14 all year: 25 hours apart, so
    // a time in Kiritimati is the next calendar day, one hour later.
    let (pago, kiri) = (zone("Pacific/Pago_Pago"), zone("Pacific/Kiritimati"));
    let t = at(EARLY);
    assert_eq!(pago.tz().to_offset(t).seconds(), -11 * 3600);
    assert_eq!(kiri.tz().to_offset(t).seconds(), 14 * 3600);

    // A Pago Pago provider's Monday 09:00–12:00 is Tuesday 10:00–13:00 in
    // Kiritimati; Kiritimati's Monday is Pago Pago's closed Sunday.
    let s = schedule(
        "Pacific/Pago_Pago",
        60,
        weekly(&MON_TO_FRI, &[("09:00", "12:00")]),
    );
    assert_eq!(
        offered(
            &s,
            "Pacific/Kiritimati",
            ("2026-06-01", "2026-06-03"),
            &[],
            EARLY
        ),
        expect(&[
            ("2026-06-01", &[]),
            (
                "2026-06-02",
                &[
                    "2026-06-02T10:00:00+14:00",
                    "2026-06-02T11:00:00+14:00",
                    "2026-06-02T12:00:00+14:00",
                ],
            ),
            (
                "2026-06-03",
                &[
                    "2026-06-03T10:00:00+14:00",
                    "2026-06-03T11:00:00+14:00",
                    "2026-06-03T12:00:00+14:00",
                ],
            ),
        ])
    );

    // The other way round: a Kiritimati provider's Monday 09:00–12:00 is
    // Sunday 08:00–11:00 in Pago Pago; Pago Pago's Saturday is Kiritimati's
    // closed Sunday.
    let s = schedule(
        "Pacific/Kiritimati",
        60,
        weekly(&MON_TO_FRI, &[("09:00", "12:00")]),
    );
    assert_eq!(
        offered(
            &s,
            "Pacific/Pago_Pago",
            ("2026-05-30", "2026-06-01"),
            &[],
            EARLY
        ),
        expect(&[
            ("2026-05-30", &[]),
            (
                "2026-05-31",
                &[
                    "2026-05-31T08:00:00-11:00",
                    "2026-05-31T09:00:00-11:00",
                    "2026-05-31T10:00:00-11:00",
                ],
            ),
            (
                "2026-06-01",
                &[
                    "2026-06-01T08:00:00-11:00",
                    "2026-06-01T09:00:00-11:00",
                    "2026-06-01T10:00:00-11:00",
                ],
            ),
        ])
    );
}

// ---------------------------------------------------------------------------
// grid_slot_at
// ---------------------------------------------------------------------------

#[test]
fn grid_slot_at_finds_grid_starts_only() {
    let s = schedule(
        "America/Lima",
        30,
        weekly(&[Weekday::Monday], &[("09:00", "13:00")]),
    );
    assert_eq!(
        grid_slot_at(&s, at("2026-06-01T09:30:00-05:00")),
        Some(Slot {
            start: at("2026-06-01T09:30:00-05:00"),
            end: at("2026-06-01T10:00:00-05:00"),
        })
    );
    assert_eq!(
        grid_slot_at(&s, at("2026-06-01T12:30:00-05:00")),
        Some(Slot {
            start: at("2026-06-01T12:30:00-05:00"),
            end: at("2026-06-01T13:00:00-05:00"),
        })
    );
    // Off the 30-minute grid.
    assert_eq!(grid_slot_at(&s, at("2026-06-01T09:10:00-05:00")), None);
    // Outside the hours: before, at the end, on a closed day.
    assert_eq!(grid_slot_at(&s, at("2026-06-01T08:30:00-05:00")), None);
    assert_eq!(grid_slot_at(&s, at("2026-06-01T13:00:00-05:00")), None);
    assert_eq!(grid_slot_at(&s, at("2026-06-02T09:30:00-05:00")), None);
    // Notice and horizon do not matter here: a slot of 2020 is still on the grid.
    assert_eq!(
        grid_slot_at(&s, at("2020-06-01T09:30:00-05:00")).map(|x| x.start),
        Some(at("2020-06-01T09:30:00-05:00"))
    );
}

#[test]
fn grid_slot_at_finds_nothing_at_a_wall_clock_time_inside_a_gap() {
    assert_santiago_2026_clock_changes();
    let s = schedule(
        "America/Santiago",
        60,
        weekly(&[Weekday::Sunday], &[("00:00", "03:00")]),
    );
    // Sunday 2026-09-06 00:30 never happens. Read with the offset before the
    // gap (-04) it is 01:30 -03, off the grid that starts at 01:00 -03; read
    // with the offset after (-03) it is Saturday 23:30 -04, outside the hours.
    assert_eq!(grid_slot_at(&s, at("2026-09-06T00:30:00-04:00")), None);
    assert_eq!(grid_slot_at(&s, at("2026-09-06T00:30:00-03:00")), None);
    // The grid starts where the gap ends.
    assert_eq!(
        grid_slot_at(&s, at("2026-09-06T01:00:00-03:00")),
        Some(Slot {
            start: at("2026-09-06T01:00:00-03:00"),
            end: at("2026-09-06T02:00:00-03:00"),
        })
    );
}
