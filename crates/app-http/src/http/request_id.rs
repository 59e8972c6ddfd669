//! The request id and the per-request context.
//!
//! tower-http sets the id (`x-request-id`: the client's when it is a
//! sensible one, else a UUIDv7) and copies it onto every response; this
//! module says what "sensible" is, makes new ids, and scopes the id for the
//! error bodies that quote it ([`current_request_id`]), recording the
//! request metrics (count and latency by route, method and status) on the
//! way out.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};

/// The header carrying the request id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// What a client's id may be to be kept: 1–128 characters that are safe in
/// logs and headers.
fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// Drops a client's `x-request-id` that is not acceptable (1–128
/// characters safe in logs and headers), so that tower-http's
/// `SetRequestId` makes a new one instead of keeping it.
pub fn drop_unacceptable_id(mut request: Request) -> Request {
    if request
        .headers()
        .get(&X_REQUEST_ID)
        .is_some_and(|v| !acceptable(v.as_bytes()))
    {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

/// New request ids: UUIDv7 (time-ordered, so logs sort by them).
#[derive(Debug, Clone, Copy)]
pub struct MakeUuidV7;

impl MakeRequestId for MakeUuidV7 {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// The request's id (as set by `SetRequestId`) or an empty one.
pub fn request_id_of<B>(request: &axum::http::Request<B>) -> &str {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The route template the request matched, or `unmatched`.
pub fn route_of<B>(request: &axum::http::Request<B>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// The middleware: the id in scope for the handler, and the request's
/// metrics once it is answered.
pub async fn request_scope(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id_of(&request).to_owned();
    // A matched path is a shared string: cloning it does not copy the text.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = REQUEST_ID.scope(id, next.run(request)).await;
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    crate::metrics::record_request(
        route,
        method.as_str(),
        response.status().as_u16(),
        start.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensible_ids_are_kept_and_others_replaced() {
        for ok in ["trace-42.abc", "mine", "a/b:c+d=e_f", &"x".repeat(128)] {
            assert!(acceptable(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "with space", "quote\"", "ñ", &"x".repeat(129)] {
            assert!(!acceptable(bad.as_bytes()), "{bad}");
        }
    }
}
