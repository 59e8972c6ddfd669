//! The slot generator's answers do not depend on the process's `TZ`: core
//! takes every zone from jiff's bundled database (ARCHITECTURE.md, "Domain").
//!
//! Changing `TZ` inside this process would need `std::env::set_var`, which is
//! `unsafe` in edition 2024, and the workspace forbids unsafe code
//! (`unsafe_code = "forbid"` cannot be lowered per file). So the test runs
//! this same test binary again as child processes, each started with a
//! different `TZ` (or none), lets each print its answers, and compares them
//! with the parent's. A child reads `TZ` from its first instruction on, so
//! nothing can have been computed or cached under another zone.
//!
//! This file holds a single test so that nothing else runs in the children.

use std::process::Command;

use cita_core::slots::{
    AvailabilityRequest, BufferMinutes, Busy, DayHours, HorizonDays, LocalInterval, NoticeMinutes,
    Schedule, SlotMinutes, WallTime, WeeklyHours, Zone, available_slots, grid_slot_at,
};
use jiff::civil::{Date, Weekday};
use jiff::{SignedDuration, Timestamp};

/// Set in a child's environment: print the answers instead of comparing them.
const CHILD: &str = "CITA_SLOT_TZ_CHILD";
const BEGIN: &str = "---- answers begin ----";
const END: &str = "---- answers end ----";
const TEST_NAME: &str = "answers_do_not_depend_on_the_process_tz";

/// Values of `TZ` to run the children with (`None`: unset). They include the
/// zones used below, POSIX rules, and names no database knows.
const TZ_VALUES: [Option<&str>; 9] = [
    None,
    Some("UTC"),
    Some("America/Santiago"),
    Some("Asia/Kathmandu"),
    Some("Pacific/Kiritimati"),
    Some("EST5EDT,M3.2.0,M11.1.0"),
    Some("<+0545>-5:45"),
    Some(":/nonexistent/zone"),
    Some(""),
];

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

/// Ranges around the 2026 clock changes of the zones above.
const RANGES: [(&str, &str); 5] = [
    ("2026-03-06", "2026-03-10"), // New York springs forward on 03-08
    ("2026-03-27", "2026-04-06"), // London 03-29; Santiago, Lord Howe 04-04/05
    ("2026-09-04", "2026-09-08"), // Santiago springs forward on 09-06
    ("2026-10-02", "2026-10-05"), // Lord Howe springs forward (30 min) on 10-04
    ("2026-10-23", "2026-11-02"), // London 10-25; New York 11-01
];

fn interval(start: &str, end: &str) -> LocalInterval {
    LocalInterval::new(
        WallTime::parse(start).unwrap(),
        WallTime::parse(end).unwrap(),
    )
    .unwrap()
}

fn day(s: &str) -> Date {
    s.parse().unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Office hours with a lunch break, a night shift on Sundays across the
/// midnight clock changes, an override closing a day and one with its own
/// hours; a buffer and some notice.
fn office(zone: Zone) -> Schedule {
    let mut s = Schedule::new(zone);
    s.slot = SlotMinutes::new(30).unwrap();
    s.buffer = BufferMinutes::new(10).unwrap();
    s.min_notice = NoticeMinutes::new(60).unwrap();
    s.horizon = HorizonDays::new(365).unwrap();
    let day_hours =
        DayHours::new(vec![interval("09:00", "13:00"), interval("14:00", "18:00")]).unwrap();
    let mut weekly = WeeklyHours::default();
    for d in [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
    ] {
        weekly.set(d, day_hours.clone());
    }
    weekly.set(
        Weekday::Sunday,
        DayHours::new(vec![interval("00:00", "03:00"), interval("22:00", "24:00")]).unwrap(),
    );
    s.weekly = weekly;
    s.overrides.insert(day("2026-03-31"), DayHours::closed());
    s.overrides.insert(
        day("2026-10-25"),
        DayHours::new(vec![interval("00:30", "03:30")]).unwrap(),
    );
    s
}

/// Every day in the hours where clocks change, with slots that do not divide
/// an hour.
fn night(zone: Zone) -> Schedule {
    let mut s = Schedule::new(zone);
    s.slot = SlotMinutes::new(45).unwrap();
    s.horizon = HorizonDays::new(365).unwrap();
    let hours =
        DayHours::new(vec![interval("00:00", "02:30"), interval("23:00", "24:00")]).unwrap();
    let mut weekly = WeeklyHours::default();
    for d in cita_core::slots::WEEKDAYS {
        weekly.set(d, hours.clone());
    }
    s.weekly = weekly;
    s
}

/// Every answer of a fixed set of questions, one line per date, plus the
/// `grid_slot_at` answer for each offered start.
fn answers() -> String {
    let now = at("2026-03-01T12:34:56Z");
    let busy: Vec<Busy> = [
        "2026-03-08T07:00:00Z",
        "2026-04-04T13:00:00Z",
        "2026-04-05T03:00:00Z",
        "2026-09-06T04:00:00Z",
        "2026-10-25T01:00:00Z",
    ]
    .into_iter()
    .map(|s| Busy {
        start: at(s),
        end: at(s) + SignedDuration::from_mins(30),
    })
    .collect();

    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (i, provider) in ZONES.iter().enumerate() {
        pairs.push((provider, provider));
        pairs.push((provider, ZONES[(i + 3) % ZONES.len()]));
    }
    pairs.push(("Pacific/Pago_Pago", "Pacific/Kiritimati"));
    pairs.push(("Pacific/Kiritimati", "Pacific/Pago_Pago"));

    let mut out = String::new();
    for (provider, display) in pairs {
        let display = Zone::parse(display).unwrap();
        for schedule in [
            office(Zone::parse(provider).unwrap()),
            night(Zone::parse(provider).unwrap()),
        ] {
            for (from, to) in RANGES {
                let answer = available_slots(&AvailabilityRequest {
                    schedule: &schedule,
                    display: &display,
                    from: day(from),
                    to: day(to),
                    busy: &busy,
                    now,
                });
                for d in answer {
                    out.push_str(&format!("{provider} -> {display} {}:", d.date));
                    for slot in d.slots {
                        let start = slot.start.to_zoned(display.tz().clone());
                        let grid = grid_slot_at(&schedule, slot.start).map(|g| g.end);
                        out.push_str(&format!(" {start}/{}/{grid:?}", slot.end));
                    }
                    out.push('\n');
                }
            }
        }
    }
    out
}

#[test]
fn answers_do_not_depend_on_the_process_tz() {
    let mine = answers();
    if std::env::var_os(CHILD).is_some() {
        println!("{BEGIN}\n{mine}{END}");
        return;
    }
    // Enough slots that a difference would show.
    assert!(
        mine.matches('/').count() > 10_000,
        "too few slots to compare"
    );

    let exe = std::env::current_exe().expect("the test binary's path");
    for tz in TZ_VALUES {
        let mut child = Command::new(&exe);
        child.args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"]);
        child.env(CHILD, "1");
        match tz {
            Some(value) => child.env("TZ", value),
            None => child.env_remove("TZ"),
        };
        let output = child.output().expect("the test binary runs again");
        let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
        assert!(
            output.status.success(),
            "child with TZ={tz:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs = stdout
            .split_once(&format!("{BEGIN}\n"))
            .and_then(|(_, rest)| rest.split_once(END))
            .map(|(answers, _)| answers)
            .unwrap_or_else(|| panic!("child with TZ={tz:?} printed no answers:\n{stdout}"));
        if let Some((line, (a, b))) = mine
            .lines()
            .zip(theirs.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!("with TZ={tz:?}, line {line} differs:\n  here:  {a}\n  there: {b}");
        }
        assert_eq!(mine.lines().count(), theirs.lines().count(), "TZ={tz:?}");
    }
}
