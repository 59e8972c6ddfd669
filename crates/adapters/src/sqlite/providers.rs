use std::collections::BTreeMap;

use super::{SqliteDatabase, codec};
use anyhow::Context as _;
use async_trait::async_trait;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderName, ProviderStore, ProviderWriteError};
use cita_core::slots::{
    BufferMinutes, DayHours, HorizonDays, LocalInterval, NoticeMinutes, Schedule, SlotMinutes,
    WEEKDAYS, WallTime, Zone,
};
use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

/// Providers in a SQLite file. Writes are single statements whose `WHERE`
/// carries the version check (`ON CONFLICT DO NOTHING` for a create), so a
/// concurrent writer can never slip between the check and the write.
#[derive(Debug, Clone)]
pub struct SqliteProviderStore {
    db: SqliteDatabase,
}

impl SqliteProviderStore {
    /// A store over `db`.
    pub fn new(db: &SqliteDatabase) -> Self {
        Self { db: db.clone() }
    }
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: String,
    name: String,
    country: String,
    schedule: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

/// The `schedule` column: the whole [`Schedule`] as JSON. Only open weekdays
/// are listed; weekdays and dates are keys (`"monday"`, `"2031-12-25"`),
/// wall-clock times `"HH:MM"` (`"24:00"` as an end).
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

impl TryFrom<ProviderRow> for Provider {
    type Error = anyhow::Error;

    fn try_from(r: ProviderRow) -> anyhow::Result<Self> {
        let schedule: ScheduleJson = serde_json::from_str(&r.schedule)
            .with_context(|| format!("provider {}: unreadable schedule", r.id))?;
        Ok(Provider {
            id: codec::parse_provider_id(&r.id)?,
            name: ProviderName::parse(&r.name)
                .with_context(|| format!("provider {}: invalid name", r.id))?,
            country: codec::parse_country(&r.country)?,
            schedule: Schedule::try_from(schedule)
                .with_context(|| format!("provider {}: invalid schedule", r.id))?,
            version: codec::parse_version(r.version)?,
            created_at: codec::instant(r.created_at)?,
            updated_at: codec::instant(r.updated_at)?,
        })
    }
}

const SELECT: &str = "SELECT id, name, country, schedule, version, created_at, updated_at \
                      FROM providers WHERE id = ?1";

const CREATE: &str = "INSERT INTO providers \
                      (id, name, country, schedule, version, created_at, updated_at) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                      ON CONFLICT (id) DO NOTHING";

const REPLACE: &str = "UPDATE providers SET name = ?2, country = ?3, schedule = ?4, \
                       version = ?5, created_at = ?6, updated_at = ?7 \
                       WHERE id = ?1 AND version = ?8";

#[async_trait]
impl ProviderStore for SqliteProviderStore {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let mut conn = self.db.read().await?;
        let row: Option<ProviderRow> = sqlx::query_as(SELECT)
            .bind(id.as_str())
            .fetch_optional(conn.conn())
            .await
            .context("reading a provider")?;
        row.map(Provider::try_from).transpose()
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
        let schedule = serde_json::to_string(&ScheduleJson::from(&provider.schedule))
            .context("encoding a schedule")?;
        let query = sqlx::query(match expected {
            None => CREATE,
            Some(_) => REPLACE,
        })
        .bind(provider.id.as_str())
        .bind(provider.name.as_str())
        .bind(provider.country.as_str())
        .bind(schedule)
        .bind(codec::version(provider.version)?)
        .bind(codec::millis(provider.created_at))
        .bind(codec::millis(provider.updated_at));
        let query = match expected {
            None => query,
            Some(v) => query.bind(codec::version(v)?),
        };
        let mut turn = self.db.write_turn().await?;
        let done = query
            .execute(turn.conn())
            .await
            .context("writing a provider")?;
        if done.rows_affected() == 0 {
            return Err(ProviderWriteError::VersionConflict);
        }
        Ok(())
    }
}
