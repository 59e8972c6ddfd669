//! The one place HTTP statuses and problem codes are decided: every error
//! leaves as `application/problem+json` (RFC 9457) with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cita_adapters::outage::is_outage;
use cita_core::booking::{
    AvailabilityError, BookError, CancelError, FieldError, GetAppointmentError, GetProviderError,
    ListError, RescheduleError, SetProviderError,
};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::request_id::current_request_id;

/// One field's problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldProblem {
    /// JSON path (`start`, `weeklyHours.monday[1]`), query parameter or header name.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl From<FieldError> for FieldProblem {
    fn from(e: FieldError) -> Self {
        Self {
            field: e.field,
            message: e.message,
        }
    }
}

/// Every problem code the API answers with: its HTTP status, title and
/// string are written once, in `ProblemCode::parts` (API.md's table;
/// `docs/api-errors.md` lists them for clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    /// 400: the body is empty, not JSON, or not an object.
    MalformedJson,
    /// 404: no provider with this id.
    ProviderNotFound,
    /// 404: no appointment with this id.
    AppointmentNotFound,
    /// 404: no such resource.
    NotFound,
    /// 405: the resource does not support the method.
    MethodNotAllowed,
    /// 409: the provider is booked at that time.
    SlotTaken,
    /// 409: the patient has another appointment at that time.
    PatientBusy,
    /// 409: the appointment is cancelled.
    AppointmentCancelled,
    /// 412: `If-Match` did not match.
    VersionMismatch,
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 414: the request target is over the limit.
    UriTooLong,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: fields are invalid (`errors` names them).
    ValidationFailed,
    /// 422: the time zone is not an IANA zone.
    InvalidTimezone,
    /// 422: the country is not served.
    CountryNotServed,
    /// 422: the country given is not the provider's.
    CountryMismatch,
    /// 422: the start is not a slot of the schedule.
    SlotNotOffered,
    /// 422: the start is closer than the minimum notice.
    TooSoon,
    /// 422: the start is beyond the horizon.
    TooFar,
    /// 422: more dates than one question may cover.
    RangeTooLarge,
    /// 422: the idempotency key was used with another body.
    IdempotencyKeyReused,
    /// 429: the client is over its rate.
    RateLimited,
    /// 431: the request's header section is over the limit.
    HeadersTooLarge,
    /// 500: something failed on the server's side.
    InternalError,
    /// 503: a dependency is down or too slow; nothing was half-written.
    Unavailable,
}

impl ProblemCode {
    /// Every code, in the order of API.md's table.
    pub const ALL: [Self; 25] = [
        Self::MalformedJson,
        Self::ProviderNotFound,
        Self::AppointmentNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::SlotTaken,
        Self::PatientBusy,
        Self::AppointmentCancelled,
        Self::VersionMismatch,
        Self::PayloadTooLarge,
        Self::UriTooLong,
        Self::UnsupportedMediaType,
        Self::ValidationFailed,
        Self::InvalidTimezone,
        Self::CountryNotServed,
        Self::CountryMismatch,
        Self::SlotNotOffered,
        Self::TooSoon,
        Self::TooFar,
        Self::RangeTooLarge,
        Self::IdempotencyKeyReused,
        Self::RateLimited,
        Self::HeadersTooLarge,
        Self::InternalError,
        Self::Unavailable,
    ];

    /// Status, stable code and title: the one place they are written.
    const fn parts(self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Self::MalformedJson => (S::BAD_REQUEST, "malformed_json", "Malformed JSON"),
            Self::ProviderNotFound => (S::NOT_FOUND, "provider_not_found", "Provider not found"),
            Self::AppointmentNotFound => (
                S::NOT_FOUND,
                "appointment_not_found",
                "Appointment not found",
            ),
            Self::NotFound => (S::NOT_FOUND, "not_found", "Not found"),
            Self::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            Self::SlotTaken => (S::CONFLICT, "slot_taken", "Slot taken"),
            Self::PatientBusy => (S::CONFLICT, "patient_busy", "Patient busy"),
            Self::AppointmentCancelled => (
                S::CONFLICT,
                "appointment_cancelled",
                "Appointment cancelled",
            ),
            Self::VersionMismatch => (
                S::PRECONDITION_FAILED,
                "version_mismatch",
                "Version mismatch",
            ),
            Self::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            Self::UriTooLong => (S::URI_TOO_LONG, "uri_too_long", "URI too long"),
            Self::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            Self::ValidationFailed => (
                S::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
            ),
            Self::InvalidTimezone => (
                S::UNPROCESSABLE_ENTITY,
                "invalid_timezone",
                "Invalid time zone",
            ),
            Self::CountryNotServed => (
                S::UNPROCESSABLE_ENTITY,
                "country_not_served",
                "Country not served",
            ),
            Self::CountryMismatch => (
                S::UNPROCESSABLE_ENTITY,
                "country_mismatch",
                "Country mismatch",
            ),
            Self::SlotNotOffered => (
                S::UNPROCESSABLE_ENTITY,
                "slot_not_offered",
                "Slot not offered",
            ),
            Self::TooSoon => (S::UNPROCESSABLE_ENTITY, "too_soon", "Too soon"),
            Self::TooFar => (S::UNPROCESSABLE_ENTITY, "too_far", "Too far"),
            Self::RangeTooLarge => (
                S::UNPROCESSABLE_ENTITY,
                "range_too_large",
                "Range too large",
            ),
            Self::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
            ),
            Self::RateLimited => (S::TOO_MANY_REQUESTS, "rate_limited", "Rate limited"),
            Self::HeadersTooLarge => (
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "Request headers too large",
            ),
            Self::InternalError => (S::INTERNAL_SERVER_ERROR, "internal_error", "Internal error"),
            Self::Unavailable => (S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
        }
    }

    /// The HTTP status.
    pub const fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The stable snake_case code (also the `outcome` label of the
    /// bookings metric).
    pub const fn as_str(self) -> &'static str {
        self.parts().1
    }

    /// A short human title.
    pub const fn title(self) -> &'static str {
        self.parts().2
    }
}

impl Serialize for ProblemCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialSchema for ProblemCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Stable snake_case problem code."))
            .enum_values(Some(Self::ALL.map(Self::as_str)))
            .into()
    }
}

impl ToSchema for ProblemCode {}

/// The problem document every error response carries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `https://cita.dev/problems/{code}`.
    #[serde(rename = "type")]
    #[schema(example = "https://cita.dev/problems/slot_taken")]
    pub type_url: String,
    /// A short human title for the code.
    #[schema(example = "Slot taken")]
    pub title: &'static str,
    /// The HTTP status.
    #[schema(example = 409)]
    pub status: u16,
    /// Stable snake_case code.
    pub code: ProblemCode,
    /// What happened, for people.
    #[schema(example = "the slot is taken")]
    pub detail: String,
    /// Field-level problems (validation failures).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// The request id (5xx), also sent as header `x-request-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every error the API answers with.
#[derive(Debug)]
pub struct ApiError {
    code: ProblemCode,
    detail: String,
    errors: Vec<FieldProblem>,
    retry_after: Option<u64>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    /// A problem with this code (and its status) and no field details.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    /// A problem with field details (e.g. `invalid_timezone`).
    pub fn with_fields(
        code: ProblemCode,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        let mut e = Self::new(code, detail);
        e.errors = errors.into_iter().map(FieldProblem::from).collect();
        e
    }

    /// 422 `validation_failed` listing every field problem.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::with_fields(
            ProblemCode::ValidationFailed,
            "the request has invalid fields",
            errors,
        )
    }

    /// 422 `validation_failed` for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 400 `malformed_json`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::MalformedJson, detail)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            ProblemCode::PayloadTooLarge,
            format!("request bodies are limited to {} KiB", limit / 1024),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn media_type() -> Self {
        Self::new(
            ProblemCode::UnsupportedMediaType,
            "send the body as application/json",
        )
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            ProblemCode::MethodNotAllowed,
            "this resource does not support that method",
        )
    }

    /// 412 `version_mismatch`.
    pub fn version_mismatch(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::VersionMismatch, detail)
    }

    /// 429 `rate_limited` with `retry-after` in seconds.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            ProblemCode::RateLimited,
            "too many requests from this client; retry later",
        )
        .retry_after(retry_after_secs)
    }

    /// 503 `unavailable`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(ProblemCode::Unavailable, detail)
    }

    /// The same, answered with `retry-after: {secs}`.
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// An unexpected failure, logged in full and answered opaquely: 503
    /// `unavailable` (with `retry-after`) when it is an outage of a
    /// dependency ([`is_outage`]), else 500.
    pub fn internal(source: anyhow::Error) -> Self {
        let mut e = if is_outage(&source) {
            Self::unavailable(
                "a dependency is unavailable; nothing was half-written. Retry later, and quote the request id if you report it.",
            )
            .retry_after(1)
        } else {
            Self::new(
                ProblemCode::InternalError,
                "something failed on our side; nothing was half-written. Quote the request id if you report it.",
            )
        };
        e.source = Some(source);
        e
    }

    /// The problem code.
    pub fn code(&self) -> ProblemCode {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        if let Some(source) = &self.source {
            tracing::error!(error = ?source, code = self.code.as_str(), request_id = request_id.as_deref().unwrap_or(""), "request failed");
        }
        let status = self.code.status();
        let problem = Problem {
            type_url: format!("https://cita.dev/problems/{}", self.code.as_str()),
            title: self.code.title(),
            status: status.as_u16(),
            code: self.code,
            detail: self.detail,
            errors: self.errors,
            request_id: if status.is_server_error() {
                request_id
            } else {
                None
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

// ---- use-case errors → API errors: exhaustive, no wildcard arm ----

impl From<GetProviderError> for ApiError {
    fn from(e: GetProviderError) -> Self {
        match e {
            GetProviderError::NotFound => provider_not_found(),
            GetProviderError::Unexpected(e) => Self::internal(e),
        }
    }
}

/// 404 `provider_not_found`.
pub fn provider_not_found() -> ApiError {
    ApiError::new(ProblemCode::ProviderNotFound, "no provider with this id")
}

/// 404 `appointment_not_found`.
pub fn appointment_not_found() -> ApiError {
    ApiError::new(
        ProblemCode::AppointmentNotFound,
        "no appointment with this id",
    )
}

impl From<SetProviderError> for ApiError {
    fn from(e: SetProviderError) -> Self {
        match e {
            SetProviderError::CountryNotServed(c) => ApiError::with_fields(
                ProblemCode::CountryNotServed,
                format!("country {c} is not served"),
                vec![FieldError::new("countryIso", format!("{c} is not served"))],
            ),
            SetProviderError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<AvailabilityError> for ApiError {
    fn from(e: AvailabilityError) -> Self {
        match e {
            AvailabilityError::ProviderNotFound => provider_not_found(),
            AvailabilityError::ToBeforeFrom => Self::field("to", "must not be before `from`"),
            AvailabilityError::RangeTooLarge { max } => ApiError::with_fields(
                ProblemCode::RangeTooLarge,
                format!("at most {max} dates may be asked at once"),
                vec![FieldError::new(
                    "to",
                    format!("at most {max} dates from `from`"),
                )],
            ),
            AvailabilityError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<BookError> for ApiError {
    fn from(e: BookError) -> Self {
        let detail = e.to_string();
        let code = match e {
            BookError::Invalid(errors) => return Self::validation(errors),
            BookError::ProviderNotFound => return provider_not_found(),
            BookError::Unexpected(e) => return Self::internal(e),
            BookError::CountryNotServed(_) => ProblemCode::CountryNotServed,
            BookError::CountryMismatch { .. } => ProblemCode::CountryMismatch,
            BookError::SlotNotOffered => ProblemCode::SlotNotOffered,
            BookError::TooSoon { .. } => ProblemCode::TooSoon,
            BookError::TooFar { .. } => ProblemCode::TooFar,
            BookError::SlotTaken => ProblemCode::SlotTaken,
            BookError::PatientBusy => ProblemCode::PatientBusy,
            BookError::IdempotencyKeyReused => ProblemCode::IdempotencyKeyReused,
        };
        Self::new(code, detail)
    }
}

impl From<RescheduleError> for ApiError {
    fn from(e: RescheduleError) -> Self {
        let detail = e.to_string();
        let code = match e {
            RescheduleError::NotFound => return appointment_not_found(),
            RescheduleError::ProviderNotFound => return provider_not_found(),
            RescheduleError::Unexpected(e) => return Self::internal(e),
            RescheduleError::Cancelled => ProblemCode::AppointmentCancelled,
            RescheduleError::VersionMismatch { .. } => ProblemCode::VersionMismatch,
            RescheduleError::CountryNotServed(_) => ProblemCode::CountryNotServed,
            RescheduleError::SlotNotOffered => ProblemCode::SlotNotOffered,
            RescheduleError::TooSoon { .. } => ProblemCode::TooSoon,
            RescheduleError::TooFar { .. } => ProblemCode::TooFar,
            RescheduleError::SlotTaken => ProblemCode::SlotTaken,
            RescheduleError::PatientBusy => ProblemCode::PatientBusy,
        };
        Self::new(code, detail)
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound => appointment_not_found(),
            e @ CancelError::VersionMismatch { .. } => Self::version_mismatch(e.to_string()),
            CancelError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<GetAppointmentError> for ApiError {
    fn from(e: GetAppointmentError) -> Self {
        match e {
            GetAppointmentError::NotFound => appointment_not_found(),
            GetAppointmentError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<ListError> for ApiError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::ToBeforeFrom => Self::field("to", "must not be before `from`"),
            ListError::Unexpected(e) => Self::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_with_titles() {
        let mut seen = HashSet::new();
        for code in ProblemCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(!code.title().is_empty());
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(s));
        }
    }

    /// `docs/api-errors.md` is what clients read: its table and the enum
    /// agree row by row (status, code, title).
    #[test]
    fn the_documented_table_is_the_enum() {
        let doc = include_str!("../../../../docs/api-errors.md");
        let rows: Vec<(u16, String, String)> = doc
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let status = cells.get(1)?.parse().ok()?;
                let code = cells.get(2)?.trim_matches('`').to_owned();
                let title = (*cells.get(3)?).to_owned();
                Some((status, code, title))
            })
            .collect();
        let expected: Vec<(u16, String, String)> = ProblemCode::ALL
            .iter()
            .map(|c| {
                (
                    c.status().as_u16(),
                    c.as_str().to_owned(),
                    c.title().to_owned(),
                )
            })
            .collect();
        assert_eq!(rows, expected);
    }
}
