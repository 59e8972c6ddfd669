//! Request bodies: JSON only (415 otherwise), at most 64 KiB (413), a JSON
//! object (400 `malformed_json` otherwise), then typed with field paths in
//! validation errors and unknown fields refused.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Request, header};
use cita_core::booking::FieldError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// The largest body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON object body, not yet typed.
#[derive(Debug)]
pub struct JsonObject(pub Value);

/// An optional JSON object body: empty bodies are `None`.
#[derive(Debug)]
pub struct OptionalJsonObject(pub Option<Value>);

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body(req: Request<Body>) -> Result<(bool, axum::body::Bytes), ApiError> {
    let json = is_json(req.headers().get(header::CONTENT_TYPE));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ApiError::too_large(BODY_LIMIT));
    }
    let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|_| ApiError::too_large(BODY_LIMIT))?;
    Ok((json, bytes))
}

fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed("the body is empty; send a JSON object"));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::malformed("the body must be a JSON object"));
    }
    Ok(value)
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, ApiError> {
        let (json, bytes) = read_body(req).await?;
        if !json {
            return Err(ApiError::media_type());
        }
        parse_object(&bytes).map(JsonObject)
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, ApiError> {
        let (json, bytes) = read_body(req).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::media_type());
        }
        parse_object(&bytes).map(|v| Self(Some(v)))
    }
}

/// Types a JSON object; a type error or an unknown field becomes a
/// `validation_failed` naming the field's path.
pub fn typed<T: DeserializeOwned>(value: Value) -> Result<T, Vec<FieldError>> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let field = match unknown_field_name(&message) {
            Some(name) if path == "." => name.to_owned(),
            // serde_path_to_error's path already ends with the unknown key.
            Some(name) if path == name || path.ends_with(&format!(".{name}")) => path,
            Some(name) => format!("{path}.{name}"),
            None if path == "." => missing_field_name(&message).unwrap_or("body").to_owned(),
            None => match missing_field_name(&message) {
                Some(name) => format!("{path}.{name}"),
                None => path,
            },
        };
        vec![FieldError::new(field, tidy(&message))]
    })
}

/// The text between backticks after `prefix` in a serde message
/// (``unknown field `colour`, expected …`` → `colour`).
pub(super) fn between_backticks<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('`')?;
    rest.split('`').next()
}

fn unknown_field_name(message: &str) -> Option<&str> {
    between_backticks(message, "unknown field ")
}

fn missing_field_name(message: &str) -> Option<&str> {
    between_backticks(message, "missing field ")
}

fn tidy(message: &str) -> String {
    if let Some(name) = unknown_field_name(message) {
        return format!("unknown field `{name}`");
    }
    if message.starts_with("missing field") {
        return "is required".to_owned();
    }
    message.to_owned()
}
