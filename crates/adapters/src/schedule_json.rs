//! The stored form of a provider's [`Schedule`], shared by every adapter
//! that keeps providers (SQLite, PostgreSQL, MySQL, DynamoDB): one JSON
//! document in the provider's `schedule` column or attribute. Databases
//! already hold it, so its shape (field names, their order, unknown fields
//! refused) must not change.

use std::collections::BTreeMap;

use anyhow::Context as _;
use cita_core::slots::{
    BufferMinutes, DayHours, HorizonDays, LocalInterval, NoticeMinutes, Schedule, SlotMinutes,
    WEEKDAYS, WallTime, Zone,
};
use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

/// The `schedule` column: the whole [`Schedule`] as JSON. Only open weekdays
/// are listed; weekdays and dates are keys (`"monday"`, `"2031-12-25"`),
/// wall-clock times `"HH:MM"` (`"24:00"` as an end). PostgreSQL keeps it as
/// `jsonb` (bound and read back as text, in jsonb's own key order and
/// spacing, which reading does not mind), DynamoDB as a String attribute.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleJson {
    zone: String,
    slot_minutes: u32,
    buffer_minutes: u32,
    min_notice_minutes: u32,
    horizon_days: u32,
    weekly: BTreeMap<String, Vec<IntervalJson>>,
    overrides: BTreeMap<String, Vec<IntervalJson>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntervalJson {
    start: String,
    end: String,
}

/// `schedule` as the stored JSON text.
pub(crate) fn encode(schedule: &Schedule) -> anyhow::Result<String> {
    serde_json::to_string(&ScheduleJson::from(schedule)).context("encoding a schedule")
}

/// Reads a schedule stored by [`encode`]; errors name `provider`, whose
/// schedule it is.
pub(crate) fn decode(text: &str, provider: &str) -> anyhow::Result<Schedule> {
    let schedule: ScheduleJson = serde_json::from_str(text)
        .with_context(|| format!("provider {provider}: unreadable schedule"))?;
    Schedule::try_from(schedule).with_context(|| format!("provider {provider}: invalid schedule"))
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "monday",
        Weekday::Tuesday => "tuesday",
        Weekday::Wednesday => "wednesday",
        Weekday::Thursday => "thursday",
        Weekday::Friday => "friday",
        Weekday::Saturday => "saturday",
        Weekday::Sunday => "sunday",
    }
}

fn intervals_json(hours: &DayHours) -> Vec<IntervalJson> {
    hours
        .intervals()
        .iter()
        .map(|i| IntervalJson {
            start: i.start().to_string(),
            end: i.end().to_string(),
        })
        .collect()
}

fn day_hours(intervals: Vec<IntervalJson>) -> anyhow::Result<DayHours> {
    let parsed = intervals
        .into_iter()
        .map(|i| {
            let start = WallTime::parse(&i.start)?;
            let end = WallTime::parse(&i.end)?;
            Ok(LocalInterval::new(start, end)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(DayHours::new(parsed)?)
}

impl From<&Schedule> for ScheduleJson {
    fn from(s: &Schedule) -> Self {
        Self {
            zone: s.zone.name().to_owned(),
            slot_minutes: s.slot.get(),
            buffer_minutes: s.buffer.get(),
            min_notice_minutes: s.min_notice.get(),
            horizon_days: s.horizon.get(),
            weekly: s
                .weekly
                .iter()
                .filter(|(_, hours)| !hours.is_closed())
                .map(|(day, hours)| (weekday_name(day).to_owned(), intervals_json(hours)))
                .collect(),
            overrides: s
                .overrides
                .iter()
                .map(|(date, hours)| (date.to_string(), intervals_json(hours)))
                .collect(),
        }
    }
}

impl TryFrom<ScheduleJson> for Schedule {
    type Error = anyhow::Error;

    fn try_from(j: ScheduleJson) -> anyhow::Result<Self> {
        let mut s = Schedule::new(Zone::parse(&j.zone)?);
        s.slot = SlotMinutes::new(j.slot_minutes)?;
        s.buffer = BufferMinutes::new(j.buffer_minutes)?;
        s.min_notice = NoticeMinutes::new(j.min_notice_minutes)?;
        s.horizon = HorizonDays::new(j.horizon_days)?;
        for (name, intervals) in j.weekly {
            let day = WEEKDAYS
                .into_iter()
                .find(|d| weekday_name(*d) == name)
                .with_context(|| format!("unknown weekday {name:?}"))?;
            s.weekly.set(day, day_hours(intervals)?);
        }
        for (date, intervals) in j.overrides {
            let date: Date = date
                .parse()
                .with_context(|| format!("invalid override date {date:?}"))?;
            s.overrides.insert(date, day_hours(intervals)?);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(intervals: &[(&str, &str)]) -> DayHours {
        DayHours::new(
            intervals
                .iter()
                .map(|(start, end)| {
                    LocalInterval::new(
                        WallTime::parse(start).unwrap(),
                        WallTime::parse(end).unwrap(),
                    )
                    .unwrap()
                })
                .collect(),
        )
        .unwrap()
    }

    fn schedule() -> Schedule {
        let mut s = Schedule::new(Zone::parse("America/Lima").unwrap());
        s.slot = SlotMinutes::new(20).unwrap();
        s.buffer = BufferMinutes::new(5).unwrap();
        s.min_notice = NoticeMinutes::new(60).unwrap();
        s.horizon = HorizonDays::new(30).unwrap();
        s.weekly.set(
            Weekday::Monday,
            hours(&[("09:00", "13:00"), ("14:00", "24:00")]),
        );
        s.weekly
            .set(Weekday::Saturday, hours(&[("09:00", "12:00")]));
        s.overrides
            .insert("2031-12-24".parse().unwrap(), hours(&[("09:00", "12:00")]));
        s.overrides
            .insert("2031-12-25".parse().unwrap(), DayHours::closed());
        s
    }

    /// The document databases already hold, to the byte.
    const STORED: &str = concat!(
        r#"{"zone":"America/Lima","slot_minutes":20,"buffer_minutes":5,"#,
        r#""min_notice_minutes":60,"horizon_days":30,"#,
        r#""weekly":{"monday":[{"start":"09:00","end":"13:00"},{"start":"14:00","end":"24:00"}],"#,
        r#""saturday":[{"start":"09:00","end":"12:00"}]},"#,
        r#""overrides":{"2031-12-24":[{"start":"09:00","end":"12:00"}],"2031-12-25":[]}}"#,
    );

    #[test]
    fn the_stored_form_is_unchanged_and_round_trips() {
        assert_eq!(encode(&schedule()).unwrap(), STORED);
        assert_eq!(decode(STORED, "ana").unwrap(), schedule());
    }

    #[test]
    fn unknown_fields_and_invalid_values_are_refused_naming_the_provider() {
        let extra = STORED.replacen('{', r#"{"colour":"red","#, 1);
        let e = decode(&extra, "ana").unwrap_err();
        assert_eq!(e.to_string(), "provider ana: unreadable schedule");
        let bad_day = STORED.replace("saturday", "caturday");
        let e = decode(&bad_day, "ana").unwrap_err();
        assert_eq!(e.to_string(), "provider ana: invalid schedule");
    }
}
