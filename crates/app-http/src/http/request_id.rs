//! Per-request context: the request id (kept from `x-request-id` when the
//! client sends a sensible one), one tracing span per request carrying it,
//! and the request metrics (count and latency by route, method and status).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header carrying the request id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// The middleware: id, span, metrics, and the id on the response.
pub async fn request_context(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    // A matched path is a shared string: cloning it does not copy the text.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        status = tracing::field::Empty,
    );
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span.clone()))
        .await;
    let status = response.status();
    let elapsed = start.elapsed();
    // Only the "request finished" line shows the status, so the span is
    // only updated when that line is written: recording a field makes the
    // log layer format the span's fields again, on every request.
    if tracing::enabled!(tracing::Level::DEBUG) {
        span.record("status", status.as_u16());
        span.in_scope(|| {
            tracing::debug!(
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                "request finished"
            );
        });
    }
    crate::metrics::record_request(route, method.as_str(), status.as_u16(), elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}
