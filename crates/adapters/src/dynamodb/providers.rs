use std::collections::BTreeMap;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use cita_core::ids::{ProviderId, Version};
use cita_core::providers::{Provider, ProviderName, ProviderStore, ProviderWriteError};
use cita_core::slots::{
    BufferMinutes, DayHours, HorizonDays, LocalInterval, NoticeMinutes, Schedule, SlotMinutes,
    WEEKDAYS, WallTime, Zone,
};
use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

use super::DynamoDatabase;
use super::codec::{self, Item};
use super::schema::PROVIDER_ID;

/// Providers in DynamoDB, one item each. A write is one `PutItem` whose
/// condition carries the version check (`attribute_not_exists` for a
/// create, `version = expected` for a replacement), so DynamoDB decides it
/// atomically against the item as it is at that moment.
#[derive(Debug, Clone)]
pub struct DynamoProviderStore {
    client: Client,
    table: String,
}

impl DynamoProviderStore {
    /// A store over `db`'s providers table.
    pub fn new(db: &DynamoDatabase) -> Self {
        Self {
            client: db.client().clone(),
            table: db.tables().providers.clone(),
        }
    }
}

const NAME: &str = "name";
const COUNTRY: &str = "country";
const SCHEDULE: &str = "schedule";
const VERSION: &str = "version";
const CREATED_AT: &str = "created_at_ms";
const UPDATED_AT: &str = "updated_at_ms";

/// The `schedule` attribute: the whole [`Schedule`] as JSON text, the same
/// document the SQL adapters store. Only open weekdays are listed; weekdays
/// and dates are keys (`"monday"`, `"2031-12-25"`), wall-clock times
/// `"HH:MM"` (`"24:00"` as an end).
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

fn encode(p: &Provider) -> anyhow::Result<Item> {
    let schedule =
        serde_json::to_string(&ScheduleJson::from(&p.schedule)).context("encoding a schedule")?;
    Ok(Item::from([
        (PROVIDER_ID.to_owned(), codec::string(p.id.as_str())),
        (NAME.to_owned(), codec::string(p.name.as_str())),
        (COUNTRY.to_owned(), codec::string(p.country.as_str())),
        (SCHEDULE.to_owned(), codec::string(schedule)),
        (
            VERSION.to_owned(),
            codec::number(codec::version(p.version)?),
        ),
        (
            CREATED_AT.to_owned(),
            codec::number(codec::millis(p.created_at)),
        ),
        (
            UPDATED_AT.to_owned(),
            codec::number(codec::millis(p.updated_at)),
        ),
    ]))
}

fn decode(item: &Item) -> anyhow::Result<Provider> {
    let id = codec::get_s(item, PROVIDER_ID)?;
    let schedule: ScheduleJson = serde_json::from_str(codec::get_s(item, SCHEDULE)?)
        .with_context(|| format!("provider {id}: unreadable schedule"))?;
    Ok(Provider {
        id: codec::parse_provider_id(id)?,
        name: ProviderName::parse(codec::get_s(item, NAME)?)
            .with_context(|| format!("provider {id}: invalid name"))?,
        country: codec::parse_country(codec::get_s(item, COUNTRY)?)?,
        schedule: Schedule::try_from(schedule)
            .with_context(|| format!("provider {id}: invalid schedule"))?,
        version: codec::parse_version(codec::get_n(item, VERSION)?)?,
        created_at: codec::instant(codec::get_n(item, CREATED_AT)?)?,
        updated_at: codec::instant(codec::get_n(item, UPDATED_AT)?)?,
    })
}

#[async_trait]
impl ProviderStore for DynamoProviderStore {
    async fn get(&self, id: &ProviderId) -> anyhow::Result<Option<Provider>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PROVIDER_ID, codec::string(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .context("reading a provider")?;
        out.item.as_ref().map(decode).transpose()
    }

    async fn put(
        &self,
        provider: &Provider,
        expected: Option<Version>,
    ) -> Result<(), ProviderWriteError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(provider)?))
            .return_values(ReturnValue::None);
        let request = match expected {
            None => request
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", PROVIDER_ID),
            // A missing item has no version, so the comparison is false.
            Some(v) => request
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":expected", codec::number(codec::version(v)?)),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(ProviderWriteError::VersionConflict)
            }
            Err(e) => Err(anyhow::Error::new(e).context("writing a provider").into()),
        }
    }
}
