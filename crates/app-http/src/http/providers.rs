//! `PUT /v1/providers/{providerId}` and `GET /v1/providers/{providerId}`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use cita_core::booking::FieldError;
use cita_core::ids::ProviderId;
use cita_core::providers::{Provider, ProviderDraft, ProviderName};
use cita_core::routing::CountryCode;
use cita_core::slots::{
    BufferMinutes, DayHours, HorizonDays, LocalInterval, NoticeMinutes, Schedule, SlotMinutes,
    WEEKDAYS, WallTime, Zone,
};
use jiff::civil::Weekday;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem, ProblemCode, provider_not_found};
use super::json::{JsonObject, typed};
use super::params::PathId;
use super::time::{parse_date, utc_millis};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/providers/{providerId}",
        put(put_provider).get(get_provider),
    )
}

/// A working interval, local wall-clock time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalDto {
    /// `HH:MM`.
    #[schema(example = "09:00")]
    pub start: String,
    /// `HH:MM`; `24:00` allowed.
    #[schema(example = "13:00")]
    pub end: String,
}

/// Weekly hours: days missing are closed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub struct WeeklyHoursDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    monday: Option<Vec<IntervalDto>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tuesday: Option<Vec<IntervalDto>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wednesday: Option<Vec<IntervalDto>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thursday: Option<Vec<IntervalDto>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    friday: Option<Vec<IntervalDto>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    saturday: Option<Vec<IntervalDto>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sunday: Option<Vec<IntervalDto>>,
}

impl WeeklyHoursDto {
    fn day(&self, day: Weekday) -> Option<&Vec<IntervalDto>> {
        match day {
            Weekday::Monday => self.monday.as_ref(),
            Weekday::Tuesday => self.tuesday.as_ref(),
            Weekday::Wednesday => self.wednesday.as_ref(),
            Weekday::Thursday => self.thursday.as_ref(),
            Weekday::Friday => self.friday.as_ref(),
            Weekday::Saturday => self.saturday.as_ref(),
            Weekday::Sunday => self.sunday.as_ref(),
        }
    }

    fn day_mut(&mut self, day: Weekday) -> &mut Option<Vec<IntervalDto>> {
        match day {
            Weekday::Monday => &mut self.monday,
            Weekday::Tuesday => &mut self.tuesday,
            Weekday::Wednesday => &mut self.wednesday,
            Weekday::Thursday => &mut self.thursday,
            Weekday::Friday => &mut self.friday,
            Weekday::Saturday => &mut self.saturday,
            Weekday::Sunday => &mut self.sunday,
        }
    }
}

/// One date with its own hours (empty = closed).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateOverrideDto {
    /// `YYYY-MM-DD`, the provider's local date.
    #[schema(format = Date, example = "2026-12-25")]
    pub date: String,
    /// That date's intervals; `[]` closes the day.
    pub hours: Vec<IntervalDto>,
}

/// The body of `PUT /v1/providers/{providerId}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({
    "name": "Dra. Ana Torres", "countryIso": "PE", "timezone": "America/Lima",
    "slotMinutes": 30, "bufferMinutes": 0, "minNoticeMinutes": 60, "horizonDays": 90,
    "weeklyHours": {
        "monday": [ { "start": "09:00", "end": "13:00" }, { "start": "14:00", "end": "18:00" } ],
        "tuesday": [ { "start": "09:00", "end": "13:00" } ] },
    "dateOverrides": [ { "date": "2026-12-25", "hours": [] } ] }))]
pub struct ProviderBody {
    /// 1–200 characters, one line, without control characters.
    #[schema(example = "Dra. Ana Torres")]
    pub name: String,
    /// ISO 3166-1 alpha-2 of a served country.
    #[schema(example = "PE")]
    pub country_iso: String,
    /// IANA time zone of the weekly hours.
    #[schema(example = "America/Lima")]
    pub timezone: String,
    /// 5–480, default 30.
    #[serde(default)]
    #[schema(minimum = 5, maximum = 480, example = 30)]
    pub slot_minutes: Option<u32>,
    /// 0–240, default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 240, example = 0)]
    pub buffer_minutes: Option<u32>,
    /// 0–525600, default 0.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 525_600, example = 60)]
    pub min_notice_minutes: Option<u32>,
    /// 1–365, default 90.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365, example = 90)]
    pub horizon_days: Option<u32>,
    /// Required (may be `{}`).
    pub weekly_hours: WeeklyHoursDto,
    /// Default `[]`.
    #[serde(default)]
    pub date_overrides: Vec<DateOverrideDto>,
}

/// A provider as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDto {
    /// The id from the path.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Country.
    pub country_iso: String,
    /// IANA zone.
    pub timezone: String,
    /// Slot length.
    pub slot_minutes: u32,
    /// Buffer after each appointment.
    pub buffer_minutes: u32,
    /// Minimum notice.
    pub min_notice_minutes: u32,
    /// Booking horizon.
    pub horizon_days: u32,
    /// Weekly hours (closed days omitted).
    pub weekly_hours: WeeklyHoursDto,
    /// Date overrides, by date.
    pub date_overrides: Vec<DateOverrideDto>,
    /// 1 on creation, + 1 per replacement.
    pub version: u64,
    /// UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-11-20T10:00:00.120Z")]
    pub created_at: String,
    /// UTC, milliseconds.
    #[schema(format = DateTime, example = "2026-11-20T10:00:00.120Z")]
    pub updated_at: String,
}

fn intervals_dto(hours: &DayHours) -> Vec<IntervalDto> {
    hours
        .intervals()
        .iter()
        .map(|i| IntervalDto {
            start: i.start().to_string(),
            end: i.end().to_string(),
        })
        .collect()
}

impl From<&Provider> for ProviderDto {
    fn from(p: &Provider) -> Self {
        let s = &p.schedule;
        let mut weekly = WeeklyHoursDto::default();
        for (day, hours) in s.weekly.iter() {
            if !hours.is_closed() {
                *weekly.day_mut(day) = Some(intervals_dto(hours));
            }
        }
        Self {
            id: p.id.to_string(),
            name: p.name.as_str().to_owned(),
            country_iso: p.country.to_string(),
            timezone: s.zone.name().to_owned(),
            slot_minutes: s.slot.get(),
            buffer_minutes: s.buffer.get(),
            min_notice_minutes: s.min_notice.get(),
            horizon_days: s.horizon.get(),
            weekly_hours: weekly,
            date_overrides: s
                .overrides
                .iter()
                .map(|(date, hours)| DateOverrideDto {
                    date: date.to_string(),
                    hours: intervals_dto(hours),
                })
                .collect(),
            version: p.version.get(),
            created_at: utc_millis(p.created_at),
            updated_at: utc_millis(p.updated_at),
        }
    }
}

fn day_hours(
    field: &str,
    intervals: &[IntervalDto],
    errors: &mut Vec<FieldError>,
) -> Option<DayHours> {
    let mut parsed = Vec::with_capacity(intervals.len());
    let mut ok = true;
    for (i, dto) in intervals.iter().enumerate() {
        let start = WallTime::parse(&dto.start);
        let end = WallTime::parse(&dto.end);
        if let Err(e) = &start {
            errors.push(FieldError::new(
                format!("{field}[{i}].start"),
                e.to_string(),
            ));
        }
        if let Err(e) = &end {
            errors.push(FieldError::new(format!("{field}[{i}].end"), e.to_string()));
        }
        let (Ok(start), Ok(end)) = (start, end) else {
            ok = false;
            continue;
        };
        if start == WallTime::END_OF_DAY {
            errors.push(FieldError::new(
                format!("{field}[{i}].start"),
                "24:00 is allowed only as an end",
            ));
            ok = false;
            continue;
        }
        match LocalInterval::new(start, end) {
            Ok(interval) => parsed.push(interval),
            Err(e) => {
                errors.push(FieldError::new(format!("{field}[{i}]"), e.to_string()));
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    match DayHours::new(parsed) {
        Ok(hours) => Some(hours),
        Err(e) => {
            errors.push(FieldError::new(
                format!("{field}[{}]", e.index),
                format!("overlaps interval {} of the same day", e.other),
            ));
            None
        }
    }
}

fn bounded<T>(
    value: Option<u32>,
    field: &str,
    parse: impl Fn(u32) -> Result<T, cita_core::slots::OutOfRange>,
    default: T,
    errors: &mut Vec<FieldError>,
) -> T
where
    T: Copy,
{
    match value.map(parse) {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            errors.push(FieldError::new(field, e.to_string()));
            default
        }
    }
}

/// What went wrong turning a body into a draft.
pub enum DraftError {
    /// The time zone is unknown (answered as `invalid_timezone`).
    Timezone(Vec<FieldError>),
    /// Other fields are invalid.
    Fields(Vec<FieldError>),
}

impl ProviderBody {
    /// Validates every field, collecting all problems.
    pub fn try_into_domain(self) -> Result<ProviderDraft, DraftError> {
        let mut errors = Vec::new();
        let name = ProviderName::parse(&self.name)
            .map_err(|e| errors.push(FieldError::new("name", e.to_string())))
            .ok();
        let country = CountryCode::parse(&self.country_iso)
            .map_err(|e| errors.push(FieldError::new("countryIso", e.to_string())))
            .ok();
        let zone = Zone::parse(&self.timezone);
        let mut bad_zone = false;
        let zone = match zone {
            Ok(z) => Some(z),
            Err(e) => {
                bad_zone = true;
                errors.push(FieldError::new("timezone", e.to_string()));
                None
            }
        };
        let slot = bounded(
            self.slot_minutes,
            "slotMinutes",
            SlotMinutes::new,
            SlotMinutes::default(),
            &mut errors,
        );
        let buffer = bounded(
            self.buffer_minutes,
            "bufferMinutes",
            BufferMinutes::new,
            BufferMinutes::default(),
            &mut errors,
        );
        let notice = bounded(
            self.min_notice_minutes,
            "minNoticeMinutes",
            NoticeMinutes::new,
            NoticeMinutes::default(),
            &mut errors,
        );
        let horizon = bounded(
            self.horizon_days,
            "horizonDays",
            HorizonDays::new,
            HorizonDays::default(),
            &mut errors,
        );
        let mut weekly = cita_core::slots::WeeklyHours::default();
        for day in WEEKDAYS {
            if let Some(intervals) = self.weekly_hours.day(day) {
                let field = format!("weeklyHours.{}", day_name(day));
                if let Some(hours) = day_hours(&field, intervals, &mut errors) {
                    weekly.set(day, hours);
                }
            }
        }
        let mut overrides = BTreeMap::new();
        for (i, o) in self.date_overrides.iter().enumerate() {
            let date = parse_date(&o.date)
                .map_err(|message| {
                    errors.push(FieldError::new(format!("dateOverrides[{i}].date"), message));
                })
                .ok();
            let hours = day_hours(&format!("dateOverrides[{i}].hours"), &o.hours, &mut errors);
            if let (Some(date), Some(hours)) = (date, hours)
                && overrides.insert(date, hours).is_some()
            {
                errors.push(FieldError::new(
                    format!("dateOverrides[{i}].date"),
                    format!("{date} appears more than once"),
                ));
            }
        }
        match (name, country, zone) {
            (Some(name), Some(country), Some(zone)) if errors.is_empty() => Ok(ProviderDraft {
                name,
                country,
                schedule: Schedule {
                    zone,
                    slot,
                    buffer,
                    min_notice: notice,
                    horizon,
                    weekly,
                    overrides,
                },
            }),
            _ if bad_zone => Err(DraftError::Timezone(errors)),
            _ => Err(DraftError::Fields(errors)),
        }
    }
}

fn day_name(day: Weekday) -> &'static str {
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

fn provider_response(status: StatusCode, provider: &Provider) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", provider.version)) {
        headers.insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Ok(v) = HeaderValue::from_str(&format!("/v1/providers/{}", provider.id))
    {
        headers.insert(header::LOCATION, v);
    }
    (status, headers, axum::Json(ProviderDto::from(provider))).into_response()
}

/// Creates (201) or replaces (200) a provider.
#[utoipa::path(
    put,
    path = "/v1/providers/{providerId}",
    tag = "providers",
    params(("providerId" = String, Path, description = "`^[A-Za-z0-9_-]{1,64}$`", example = "ana")),
    request_body = ProviderBody,
    responses(
        (status = 200, description = "Replaced", body = ProviderDto),
        (status = 201, description = "Created", body = ProviderDto,
            headers(("Location" = String, description = "/v1/providers/{id}"), ("ETag" = String))),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed, invalid_timezone, country_not_served", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_provider(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let id = ProviderId::parse(&id);
    let body = typed::<ProviderBody>(body);
    let (id, body) = match (id, body) {
        (Ok(id), Ok(body)) => (id, body),
        (id, body) => {
            let mut errors = Vec::new();
            if let Err(e) = id {
                errors.push(FieldError::new("providerId", e.to_string()));
            }
            if let Err(e) = body {
                errors.extend(e);
            }
            return Err(ApiError::validation(errors));
        }
    };
    let draft = match body.try_into_domain() {
        Ok(d) => d,
        Err(DraftError::Timezone(errors)) => {
            return Err(ApiError::with_fields(
                ProblemCode::InvalidTimezone,
                "timezone is not an IANA time zone",
                errors,
            ));
        }
        Err(DraftError::Fields(errors)) => return Err(ApiError::validation(errors)),
    };
    let outcome = state.service.set_provider(id, draft).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(provider_response(status, &outcome.provider))
}

/// Reads a provider.
#[utoipa::path(
    get,
    path = "/v1/providers/{providerId}",
    tag = "providers",
    params(("providerId" = String, Path, example = "ana")),
    responses(
        (status = 200, description = "The provider", body = ProviderDto, headers(("ETag" = String))),
        (status = 404, description = "provider_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_provider(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let id = ProviderId::parse(&id).map_err(|_| provider_not_found())?;
    let provider = state.service.get_provider(&id).await?;
    Ok(provider_response(StatusCode::OK, &provider))
}
