//! `GET /v1/providers/{providerId}/availability`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use cita_core::booking::{AvailabilityQuery, FieldError};
use cita_core::ids::ProviderId;
use cita_core::slots::Zone;
use jiff::civil::Date;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem, provider_not_found};
use super::time::with_offset;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/providers/{providerId}/availability",
        get(get_availability),
    )
}

/// Query parameters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; parsing is by hand for precise errors
pub struct AvailabilityParams {
    /// First date, `YYYY-MM-DD`, in the display zone. Required.
    from: String,
    /// Last date, inclusive; defaults to `from`; at most 31 dates.
    to: Option<String>,
    /// IANA display zone; the provider's by default.
    timezone: Option<String>,
}

/// One free slot, in the display zone's offset.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotDto {
    /// RFC 3339 with the display zone's offset.
    #[schema(example = "2026-11-23T15:00:00+01:00")]
    pub start: String,
    /// RFC 3339 with the display zone's offset.
    #[schema(example = "2026-11-23T15:30:00+01:00")]
    pub end: String,
}

/// One date of the display zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayDto {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Free slots starting that date, in order.
    pub slots: Vec<SlotDto>,
}

/// Free slots grouped by display-zone date; every date of the range appears.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityDto {
    /// The provider.
    pub provider_id: String,
    /// The display zone.
    pub timezone: String,
    /// Slot length.
    pub slot_minutes: u32,
    /// Every date from `from` to `to`.
    pub days: Vec<DayDto>,
}

fn parse_date(field: &str, value: &str, errors: &mut Vec<FieldError>) -> Option<Date> {
    match value.parse::<Date>() {
        Ok(d) if value.len() == 10 => Some(d),
        _ => {
            errors.push(FieldError::new(field, "must be a date YYYY-MM-DD"));
            None
        }
    }
}

/// The free slots of a provider.
#[utoipa::path(
    get,
    path = "/v1/providers/{providerId}/availability",
    tag = "availability",
    params(("providerId" = String, Path), AvailabilityParams),
    responses(
        (status = 200, description = "Free slots by date", body = AvailabilityDto),
        (status = 404, description = "provider_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed, invalid_timezone, range_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_availability(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::Json<AvailabilityDto>, ApiError> {
    let mut errors = Vec::new();
    for key in params.keys() {
        if !matches!(key.as_str(), "from" | "to" | "timezone") {
            errors.push(FieldError::new(key.clone(), "unknown query parameter"));
        }
    }
    let from = match params.get("from") {
        Some(v) => parse_date("from", v, &mut errors),
        None => {
            errors.push(FieldError::new("from", "is required"));
            None
        }
    };
    let to = params
        .get("to")
        .and_then(|v| parse_date("to", v, &mut errors));
    let display = match params.get("timezone").map(|z| Zone::parse(z)) {
        None => None,
        Some(Ok(z)) => Some(z),
        Some(Err(e)) => {
            return Err(ApiError::unprocessable(
                "invalid_timezone",
                "timezone is not an IANA time zone",
                vec![FieldError::new("timezone", e.to_string())],
            ));
        }
    };
    let Some(from) = from.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let provider_id = ProviderId::parse(&id).map_err(|_| provider_not_found())?;
    let availability = state
        .service
        .availability(AvailabilityQuery {
            provider_id,
            from,
            to,
            display,
        })
        .await?;
    let tz = availability.zone.tz();
    let days = availability
        .days
        .iter()
        .map(|day| DayDto {
            date: day.date.to_string(),
            slots: day
                .slots
                .iter()
                .map(|slot| {
                    let mut start = String::with_capacity(25);
                    let mut end = String::with_capacity(25);
                    with_offset(slot.start, tz.to_offset(slot.start), &mut start);
                    with_offset(slot.end, tz.to_offset(slot.end), &mut end);
                    SlotDto { start, end }
                })
                .collect(),
        })
        .collect();
    Ok(axum::Json(AvailabilityDto {
        provider_id: availability.provider_id.to_string(),
        timezone: availability.zone.name().to_owned(),
        slot_minutes: availability.slot.get(),
        days,
    }))
}
