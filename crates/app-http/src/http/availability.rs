//! `GET /v1/providers/{providerId}/availability`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use cita_core::booking::{AvailabilityQuery, FieldError};
use cita_core::ids::ProviderId;
use cita_core::slots::Zone;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem, ProblemCode, provider_not_found};
use super::params::{Param, PathId, Problems, Query, Unknown};
use super::time::with_offset;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v1/providers/{providerId}/availability",
        get(get_availability),
    )
}

/// The query of `GET /v1/providers/{providerId}/availability`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityParams {
    /// First date, `YYYY-MM-DD`, in the display zone.
    #[param(value_type = String, format = Date, required = true, example = "2026-11-23")]
    from: Option<Param<Date>>,
    /// Last date, inclusive; defaults to `from`; at most 31 dates.
    #[param(value_type = Option<String>, format = Date, example = "2026-11-29")]
    to: Option<Param<Date>>,
    /// IANA display zone; the provider's by default.
    #[param(value_type = Option<String>, example = "Europe/Madrid")]
    timezone: Option<Param<String>>,
    #[serde(flatten)]
    #[param(ignore)]
    unknown: Unknown,
}

impl AvailabilityParams {
    /// The question, or every problem of the query. An unknown time zone
    /// has a code of its own (`invalid_timezone`) and is answered alone; a
    /// malformed provider id is a provider that does not exist, after the
    /// query (a bad query is 422 whoever the provider is).
    fn try_into_domain(self, provider_id: &str) -> Result<AvailabilityQuery, ApiError> {
        let mut problems = Problems::unknown(&self.unknown);
        let from = problems.required("from", self.from);
        let to = problems.optional("to", self.to);
        let display = match problems
            .optional("timezone", self.timezone)
            .map(|z| Zone::parse(&z))
        {
            None => None,
            Some(Ok(z)) => Some(z),
            Some(Err(e)) => {
                return Err(ApiError::with_fields(
                    ProblemCode::InvalidTimezone,
                    "timezone is not an IANA time zone",
                    vec![FieldError::new("timezone", e.to_string())],
                ));
            }
        };
        let from = problems.or_value(from).map_err(ApiError::validation)?;
        let provider_id = ProviderId::parse(provider_id).map_err(|_| provider_not_found())?;
        Ok(AvailabilityQuery {
            provider_id,
            from,
            to,
            display,
        })
    }
}

/// One free slot, in the display zone's offset.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotDto {
    /// RFC 3339 with the display zone's offset.
    #[schema(format = DateTime, example = "2026-11-23T15:00:00+01:00")]
    pub start: String,
    /// RFC 3339 with the display zone's offset.
    #[schema(format = DateTime, example = "2026-11-23T15:30:00+01:00")]
    pub end: String,
}

/// One date of the display zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayDto {
    /// `YYYY-MM-DD`.
    #[schema(format = Date, example = "2026-11-23")]
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

/// The free slots of a provider.
#[utoipa::path(
    get,
    path = "/v1/providers/{providerId}/availability",
    tag = "availability",
    params(("providerId" = String, Path, example = "ana"), AvailabilityParams),
    responses(
        (status = 200, description = "Free slots by date", body = AvailabilityDto),
        (status = 404, description = "provider_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed, invalid_timezone, range_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_availability(
    State(state): State<AppState>,
    PathId(id): PathId,
    Query(params): Query<AvailabilityParams>,
) -> Result<axum::Json<AvailabilityDto>, ApiError> {
    let query = params.try_into_domain(&id)?;
    let availability = state.service.availability(query).await?;
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
