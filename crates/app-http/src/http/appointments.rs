//! `/v1/appointments`: book, read, list, reschedule, cancel.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cita_core::booking::{
    AppointmentQuery, AppointmentStatus, BookRequest, CancelReason, CancelRequest, Cursor,
    FieldError, Fingerprint, IdempotencyKey, ListRequest, Notes, PageLimit, Replay,
    RescheduleRequest,
};
use cita_core::events::AppointmentSnapshot;
use cita_core::ids::{AppointmentId, PatientId, ProviderId, Version};
use cita_core::routing::CountryCode;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, Problem, appointment_not_found};
use super::json::{JsonObject, OptionalJsonObject, typed};
use super::params::{FromParam, Param, PathId, Problems, Query, Unknown};
use super::time::parse_instant;
use crate::metrics::{BookingOutcome, record_booking};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/appointments", post(book).get(list))
        .route(
            "/v1/appointments/{id}",
            get(get_one).put(reschedule).delete(cancel),
        )
}

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn appointment_response(status: StatusCode, a: &AppointmentSnapshot, created: bool) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(a.version.get()));
    if created && let Ok(v) = HeaderValue::from_str(&format!("/v1/appointments/{}", a.id)) {
        headers.insert(header::LOCATION, v);
    }
    (status, headers, axum::Json(a)).into_response()
}

/// The body of `POST /v1/appointments`. (The example's `start` is a slot
/// of the example provider in the coming days: `/openapi.json` computes it
/// when the server starts.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({ "providerId": "ana", "patientId": "12345",
    "start": "2026-11-23T14:00:00Z", "countryIso": "PE", "notes": "primera consulta" }))]
pub struct BookBody {
    /// The provider.
    #[schema(example = "ana")]
    pub provider_id: String,
    /// The patient, `^[A-Za-z0-9_-]{1,64}$`.
    #[schema(example = "12345")]
    pub patient_id: String,
    /// A slot start, RFC 3339, any offset.
    #[schema(format = DateTime, example = "2026-11-23T14:00:00Z")]
    pub start: String,
    /// If given, must be the provider's country.
    #[serde(default)]
    #[schema(example = "PE")]
    pub country_iso: Option<String>,
    /// At most 1000 characters; tabs and line breaks are the only control
    /// characters allowed.
    #[serde(default)]
    #[schema(example = "primera consulta")]
    pub notes: Option<String>,
}

fn instant(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    parse_instant(s)
        .map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

impl BookBody {
    fn try_into_domain(self) -> Result<BookRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let provider = ProviderId::parse(&self.provider_id)
            .map_err(|e| errors.push(FieldError::new("providerId", e.to_string())))
            .ok();
        let patient = PatientId::parse(&self.patient_id)
            .map_err(|e| errors.push(FieldError::new("patientId", e.to_string())))
            .ok();
        let start = instant("start", &self.start, &mut errors);
        let country = match self.country_iso.as_deref().map(CountryCode::parse) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                errors.push(FieldError::new("countryIso", e.to_string()));
                None
            }
        };
        let notes = match self.notes.as_deref().map(Notes::parse) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                errors.push(FieldError::new("notes", e.to_string()));
                None
            }
        };
        match (provider, patient, start) {
            (Some(provider_id), Some(patient_id), Some(start)) if errors.is_empty() => {
                Ok(BookRequest {
                    provider_id,
                    patient_id,
                    start,
                    country,
                    notes,
                    idempotency: None,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A digest of the body's JSON value: key order and whitespace do not matter
/// (serde_json's maps are sorted), values do.
fn fingerprint(body: &Value) -> Fingerprint {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    Fingerprint(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Books a slot.
#[utoipa::path(
    post,
    path = "/v1/appointments",
    tag = "appointments",
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 characters; the same key with the same body within 24 h replays the first answer", example = "first-booking")),
    request_body = BookBody,
    responses(
        (status = 201, description = "Booked (pending until the country records it)", body = AppointmentSnapshot,
            headers(("Location" = String), ("ETag" = String), ("idempotent-replayed" = String, description = "`true` on a replay"))),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "provider_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "slot_taken, patient_busy", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed, country_not_served, country_mismatch, slot_not_offered, too_soon, too_far, idempotency_key_reused", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn book(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let key = match headers.get(&IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| IdempotencyKey::parse(s).ok())
                .ok_or_else(|| {
                    ApiError::field(
                        "Idempotency-Key",
                        "must be 1 to 255 printable ASCII characters",
                    )
                })?,
        ),
    };
    let idempotency = key.map(|key| (key, fingerprint(&body)));
    let request = typed::<BookBody>(body).and_then(BookBody::try_into_domain);
    let (outcome, replay) = match (request, idempotency) {
        (Ok(request), idempotency) => {
            state
                .service
                .book(BookRequest {
                    idempotency,
                    ..request
                })
                .await
        }
        (Err(errors), Some((key, fingerprint))) => {
            state
                .service
                .refuse_invalid_booking(&key, &fingerprint, errors)
                .await
        }
        (Err(errors), None) => return Err(ApiError::validation(errors)),
    };
    let (booking, mut response) = match outcome {
        Ok(appointment) => (
            BookingOutcome::Booked,
            appointment_response(StatusCode::CREATED, &appointment, true),
        ),
        Err(e) => {
            let e = ApiError::from(e);
            (BookingOutcome::Refused(e.code()), e.into_response())
        }
    };
    match replay {
        Replay::Fresh => record_booking(booking),
        Replay::Replayed => {
            record_booking(BookingOutcome::Replayed);
            response
                .headers_mut()
                .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
        }
    }
    Ok(response)
}

fn parse_id(id: &str) -> Result<AppointmentId, ApiError> {
    AppointmentId::parse(id).map_err(|_| appointment_not_found())
}

/// Reads an appointment.
#[utoipa::path(
    get,
    path = "/v1/appointments/{id}",
    tag = "appointments",
    params(("id" = String, Path, description = "UUIDv7; a malformed id is 404")),
    responses(
        (status = 200, description = "The appointment", body = AppointmentSnapshot, headers(("ETag" = String))),
        (status = 404, description = "appointment_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let appointment = state.service.get_appointment(parse_id(&id)?).await?;
    Ok(appointment_response(
        StatusCode::OK,
        &AppointmentSnapshot::from(&appointment),
        false,
    ))
}

/// The query of `GET /v1/appointments`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A patient's appointments (this or providerId is required).
    #[param(value_type = Option<String>, example = "12345")]
    patient_id: Option<Param<PatientId>>,
    /// A provider's appointments.
    #[param(value_type = Option<String>, example = "ana")]
    provider_id: Option<Param<ProviderId>>,
    /// First UTC date of `start`, inclusive (`YYYY-MM-DD`).
    #[param(value_type = Option<String>, format = Date)]
    from: Option<Param<Date>>,
    /// Last UTC date of `start`, inclusive.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<Param<Date>>,
    /// Only appointments with this status.
    #[param(value_type = Option<AppointmentStatus>)]
    status: Option<Param<AppointmentStatus>>,
    /// 1–200, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<Param<PageLimit>>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<Param<Cursor>>,
    #[serde(flatten)]
    #[param(ignore)]
    unknown: Unknown,
}

impl FromParam for PatientId {
    fn from_param(s: &str) -> Result<Self, String> {
        PatientId::parse(s).map_err(|e| e.to_string())
    }
}

impl FromParam for ProviderId {
    fn from_param(s: &str) -> Result<Self, String> {
        ProviderId::parse(s).map_err(|e| e.to_string())
    }
}

impl FromParam for AppointmentStatus {
    fn from_param(s: &str) -> Result<Self, String> {
        s.parse()
            .map_err(|e: cita_core::booking::UnknownStatus| e.to_string())
    }
}

impl FromParam for PageLimit {
    fn from_param(s: &str) -> Result<Self, String> {
        s.parse::<usize>()
            .map_err(|_| "must be a whole number from 1 to 200".to_owned())
            .and_then(|n| PageLimit::new(n).map_err(|e| e.to_string()))
    }
}

impl FromParam for Cursor {
    fn from_param(s: &str) -> Result<Self, String> {
        s.parse()
            .map_err(|e: cita_core::booking::CursorError| e.to_string())
    }
}

impl ListParams {
    /// The listing, or every problem of the query.
    fn try_into_domain(self) -> Result<ListRequest, Vec<FieldError>> {
        let mut problems = Problems::unknown(&self.unknown);
        let owner_given = self.patient_id.is_some() || self.provider_id.is_some();
        let patient = problems.optional("patientId", self.patient_id);
        let provider = problems.optional("providerId", self.provider_id);
        let from = problems.optional("from", self.from);
        let to = problems.optional("to", self.to);
        let status = problems.optional("status", self.status);
        let limit = problems.optional("limit", self.limit).unwrap_or_default();
        let cursor = problems.optional("cursor", self.cursor);
        if !owner_given {
            problems.note("patientId", "patientId or providerId is required");
        }
        let owner = AppointmentQuery::new(patient, provider, limit.get()).ok();
        let owner = problems.or_value(owner)?;
        Ok(ListRequest {
            owner,
            from,
            to,
            status,
            limit,
            cursor,
        })
    }
}

/// One page of appointments.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageDto {
    /// Ordered by start, then id.
    pub items: Vec<AppointmentSnapshot>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Lists appointments by patient or provider.
#[utoipa::path(
    get,
    path = "/v1/appointments",
    tag = "appointments",
    params(ListParams),
    responses(
        (status = 200, description = "One page", body = PageDto),
        (status = 422, description = "validation_failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<PageDto>, ApiError> {
    let request = params.try_into_domain().map_err(ApiError::validation)?;
    let page = state.service.list_appointments(request).await?;
    Ok(axum::Json(PageDto {
        items: page.items.iter().map(AppointmentSnapshot::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// `If-Match: "3"` (also `W/"3"`); `*` matches any version.
fn if_match(headers: &HeaderMap) -> Result<Option<Version>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|n| Version::new(n).ok())
        .map(Some)
        .ok_or_else(|| ApiError::version_mismatch("If-Match must be an ETag such as \"3\""))
}

/// The body of `PUT /v1/appointments/{id}`. (The example's `start` is
/// computed like `BookBody`'s, an hour later.)
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "start": "2026-11-23T15:00:00Z" }))]
pub struct RescheduleBody {
    /// The new slot's start, RFC 3339.
    #[schema(format = DateTime, example = "2026-11-23T15:00:00Z")]
    pub start: String,
}

/// Moves an appointment to another slot.
#[utoipa::path(
    put,
    path = "/v1/appointments/{id}",
    tag = "appointments",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "\"{version}\"")),
    request_body = RescheduleBody,
    responses(
        (status = 200, description = "Rescheduled (pending again), or unchanged when the start is the same", body = AppointmentSnapshot, headers(("ETag" = String))),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "appointment_not_found, provider_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "appointment_cancelled, slot_taken, patient_busy", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed, country_not_served, slot_not_offered, too_soon, too_far", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reschedule(
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let body: RescheduleBody = typed(body).map_err(ApiError::validation)?;
    let mut errors = Vec::new();
    let start = instant("start", &body.start, &mut errors);
    let Some(start) = start else {
        return Err(ApiError::validation(errors));
    };
    let id = parse_id(&id)?;
    let expected = if_match(&headers)?;
    let outcome = state
        .service
        .reschedule(RescheduleRequest {
            id,
            start,
            expected,
        })
        .await?;
    Ok(appointment_response(
        StatusCode::OK,
        &AppointmentSnapshot::from(&outcome.appointment),
        false,
    ))
}

/// The optional body of `DELETE /v1/appointments/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "reason": "the patient is travelling" }))]
pub struct CancelBody {
    /// At most 500 characters; tabs and line breaks are the only control
    /// characters allowed.
    #[serde(default)]
    #[schema(example = "the patient is travelling")]
    pub reason: Option<String>,
}

/// Cancels an appointment.
#[utoipa::path(
    delete,
    path = "/v1/appointments/{id}",
    tag = "appointments",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "\"{version}\"")),
    request_body(content = Option<CancelBody>, description = "Optional: no body at all, or a JSON object"),
    responses(
        (status = 200, description = "Cancelled (or already cancelled: unchanged)", body = AppointmentSnapshot, headers(("ETag" = String))),
        (status = 400, description = "malformed_json", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "appointment_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: HeaderMap,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<Response, ApiError> {
    let reason = match body {
        None => None,
        Some(v) => {
            let body: CancelBody = typed(v).map_err(ApiError::validation)?;
            match body.reason.as_deref().map(CancelReason::parse) {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => return Err(ApiError::field("reason", e.to_string())),
            }
        }
    };
    let id = parse_id(&id)?;
    let expected = if_match(&headers)?;
    let outcome = state
        .service
        .cancel(CancelRequest {
            id,
            reason,
            expected,
        })
        .await?;
    Ok(appointment_response(
        StatusCode::OK,
        &AppointmentSnapshot::from(&outcome.appointment),
        false,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "b": [1, 2], "a": 1 }"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"a":2,"b":[1,2]}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
