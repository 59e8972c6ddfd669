//! The one place HTTP statuses and problem codes are decided: every error
//! leaves as `application/problem+json` (RFC 9457) with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cita_core::booking::{
    AvailabilityError, BookError, CancelError, FieldError, GetAppointmentError, GetProviderError,
    ListError, RescheduleError, SetProviderError,
};
use serde::Serialize;
use utoipa::ToSchema;

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

/// The problem document every error response carries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `https://cita.dev/problems/{code}`.
    #[serde(rename = "type")]
    pub type_url: String,
    /// A short human title for the code.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// Stable snake_case code.
    pub code: &'static str,
    /// What happened, for people.
    pub detail: String,
    /// Field-level problems (validation failures).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// The request id (500s), also sent as header `x-request-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every error the API answers with.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<FieldProblem>,
    retry_after: Option<u64>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    /// 422 `validation_failed` listing every field problem.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the request has invalid fields",
        );
        e.errors = errors.into_iter().map(FieldProblem::from).collect();
        e
    }

    /// 422 `validation_failed` for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// 422 with a code of its own and field details (e.g. `invalid_timezone`).
    pub fn unprocessable(
        code: &'static str,
        detail: impl Into<String>,
        errors: Vec<FieldError>,
    ) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
        e.errors = errors.into_iter().map(FieldProblem::from).collect();
        e
    }

    /// 400 `malformed_json`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", detail)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {} KiB", limit / 1024),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        )
    }

    /// 404 with a code.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this resource does not support that method",
        )
    }

    /// 412 `version_mismatch`.
    pub fn version_mismatch(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "version_mismatch", detail)
    }

    /// 429 `rate_limited` with `retry-after` in seconds.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from this client; retry later",
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// 503 `unavailable`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// 500: logged in full, answered opaquely.
    pub fn internal(source: anyhow::Error) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something failed on our side; nothing was half-written. Quote the request id if you report it.",
        );
        e.source = Some(source);
        e
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

fn title(code: &str) -> &'static str {
    match code {
        "malformed_json" => "Malformed JSON",
        "provider_not_found" => "Provider not found",
        "appointment_not_found" => "Appointment not found",
        "not_found" => "Not found",
        "method_not_allowed" => "Method not allowed",
        "slot_taken" => "Slot taken",
        "patient_busy" => "Patient busy",
        "appointment_cancelled" => "Appointment cancelled",
        "version_mismatch" => "Version mismatch",
        "payload_too_large" => "Payload too large",
        "unsupported_media_type" => "Unsupported media type",
        "validation_failed" => "Validation failed",
        "invalid_timezone" => "Invalid time zone",
        "country_not_served" => "Country not served",
        "country_mismatch" => "Country mismatch",
        "slot_not_offered" => "Slot not offered",
        "too_soon" => "Too soon",
        "too_far" => "Too far",
        "range_too_large" => "Range too large",
        "idempotency_key_reused" => "Idempotency key reused",
        "rate_limited" => "Rate limited",
        "unavailable" => "Service unavailable",
        _ => "Internal error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = current_request_id();
        if let Some(source) = &self.source {
            tracing::error!(error = ?source, request_id = request_id.as_deref().unwrap_or(""), "request failed");
        }
        let problem = Problem {
            type_url: format!("https://cita.dev/problems/{}", self.code),
            title: title(self.code),
            status: self.status.as_u16(),
            code: self.code,
            detail: self.detail,
            errors: self.errors,
            request_id: if self.status.is_server_error() {
                request_id
            } else {
                None
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
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

// ---- use-case errors → API errors (each status written once, here) ----

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
    ApiError::not_found("provider_not_found", "no provider with this id")
}

/// 404 `appointment_not_found`.
pub fn appointment_not_found() -> ApiError {
    ApiError::not_found("appointment_not_found", "no appointment with this id")
}

impl From<SetProviderError> for ApiError {
    fn from(e: SetProviderError) -> Self {
        match e {
            SetProviderError::CountryNotServed(c) => ApiError::unprocessable(
                "country_not_served",
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
            AvailabilityError::RangeTooLarge { max } => ApiError::unprocessable(
                "range_too_large",
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

fn conflict(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, detail)
}

fn rule(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

/// The problem code of a booking error (also the `outcome` label of the
/// bookings metric).
pub fn book_code(e: &BookError) -> &'static str {
    match e {
        BookError::Invalid(_) => "validation_failed",
        BookError::ProviderNotFound => "provider_not_found",
        BookError::CountryNotServed(_) => "country_not_served",
        BookError::CountryMismatch { .. } => "country_mismatch",
        BookError::SlotNotOffered => "slot_not_offered",
        BookError::TooSoon { .. } => "too_soon",
        BookError::TooFar { .. } => "too_far",
        BookError::SlotTaken => "slot_taken",
        BookError::PatientBusy => "patient_busy",
        BookError::IdempotencyKeyReused => "idempotency_key_reused",
        BookError::Unexpected(_) => "internal_error",
    }
}

impl From<BookError> for ApiError {
    fn from(e: BookError) -> Self {
        let code = book_code(&e);
        let detail = e.to_string();
        match e {
            BookError::Invalid(errors) => Self::validation(errors),
            BookError::ProviderNotFound => provider_not_found(),
            BookError::SlotTaken | BookError::PatientBusy => conflict(code, detail),
            BookError::Unexpected(e) => Self::internal(e),
            _ => rule(code, detail),
        }
    }
}

impl From<RescheduleError> for ApiError {
    fn from(e: RescheduleError) -> Self {
        let detail = e.to_string();
        match e {
            RescheduleError::NotFound => appointment_not_found(),
            RescheduleError::Cancelled => conflict("appointment_cancelled", detail),
            RescheduleError::VersionMismatch { .. } => Self::version_mismatch(detail),
            RescheduleError::ProviderNotFound => provider_not_found(),
            RescheduleError::CountryNotServed(_) => rule("country_not_served", detail),
            RescheduleError::SlotNotOffered => rule("slot_not_offered", detail),
            RescheduleError::TooSoon { .. } => rule("too_soon", detail),
            RescheduleError::TooFar { .. } => rule("too_far", detail),
            RescheduleError::SlotTaken => conflict("slot_taken", detail),
            RescheduleError::PatientBusy => conflict("patient_busy", detail),
            RescheduleError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        let detail = e.to_string();
        match e {
            CancelError::NotFound => appointment_not_found(),
            CancelError::VersionMismatch { .. } => Self::version_mismatch(detail),
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
