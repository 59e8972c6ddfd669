//! scratch
use cita_core::slots::*;
use jiff::civil::date;
use jiff::tz::TimeZone;

fn wt(s: &str) -> WallTime {
    WallTime::parse(s).unwrap()
}

#[test]
fn probe() {
    for name in [
        "America/Santiago",
        "Europe/London",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "America/Lima",
        "Europe/Berlin",
    ] {
        let tz = TimeZone::get(name).unwrap();
        let mut t = "2025-01-01T00:00Z".parse::<jiff::Timestamp>().unwrap();
        print!("{name}:");
        for tr in tz.following(t).take(6) {
            let ts = tr.timestamp();
            print!(
                " {} ({} -> {})",
                ts,
                tz.to_offset(ts.checked_sub(jiff::SignedDuration::from_secs(1)).unwrap()),
                tr.offset()
            );
            t = ts;
        }
        println!();
    }
    let _ = t_touch();
}

fn t_touch() {
    let zone = Zone::parse("UTC").unwrap();
    let mut s = Schedule::new(zone.clone());
    s.slot = SlotMinutes::new(45).unwrap();
    s.horizon = HorizonDays::new(365).unwrap();
    let i = |a, b| LocalInterval::new(wt(a), wt(b)).unwrap();
    s.weekly.set(
        jiff::civil::Weekday::Monday,
        DayHours::new(vec![i("09:00", "10:00"), i("10:00", "11:00")]).unwrap(),
    );
    let busy = [];
    let r = available_slots(&AvailabilityRequest {
        schedule: &s,
        display: &zone,
        from: date(2026, 1, 5),
        to: date(2026, 1, 5),
        busy: &busy,
        now: "2026-01-01T00:00Z".parse().unwrap(),
    });
    for d in r {
        for sl in d.slots {
            println!("touch: {} {}", sl.start, sl.end);
        }
    }
}
