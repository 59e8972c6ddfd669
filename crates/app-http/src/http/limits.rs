//! How large a request head may be, and how long a request may take,
//! answered as problems. Bodies are limited where they are read (`json`).
//!
//! The head limits sit below the HTTP/1 parser's own (hyper refuses a
//! request target of 64 KiB or more, a head over its read buffer or over
//! [`MAX_PARSED_HEADERS`] fields with a bare 414/431 and closes the
//! connection), so every head between ours and hyper's gets a problem
//! document instead.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ProblemCode};

/// The longest request target (path and query) answered, in bytes.
pub const MAX_URI: usize = 8 * 1024;

/// The largest header section answered, in bytes (names, values and
/// `: `/CRLF, as on the wire).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The most header fields answered.
pub const MAX_HEADERS: usize = 100;

/// How many header fields hyper parses at most (above `MAX_HEADERS`, so
/// that a few more than allowed are refused here, as a problem).
pub const MAX_PARSED_HEADERS: usize = 2 * MAX_HEADERS;

/// The middleware: 414 `uri_too_long`, 431 `headers_too_large`.
pub async fn head_limits(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI {
        return ApiError::new(
            ProblemCode::UriTooLong,
            format!(
                "the request target is {target} bytes; at most {} KiB are read",
                MAX_URI / 1024
            ),
        )
        .into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            ProblemCode::HeadersTooLarge,
            format!(
                "the request has {} header fields in {bytes} bytes; at most {MAX_HEADERS} fields in {} KiB are read",
                headers.len(),
                MAX_HEADER_BYTES / 1024
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// tower-http's `TimeoutLayer` answers a request that ran out of time with
/// a bare status: this makes it the problem (`503 unavailable`, as the
/// server, usually a dependency, did not answer in time; 408 is for a
/// client that is slow to send, which hyper's header read timeout covers
/// by closing the connection). Every other response of the layers inside
/// carries a content type, so a bare 503 can only be the timeout's.
pub fn timeout_problem(timeout: Duration) -> impl Fn(Response) -> Response + Clone {
    move |response: Response| {
        if response.status() != StatusCode::SERVICE_UNAVAILABLE
            || response.headers().contains_key(header::CONTENT_TYPE)
        {
            return response;
        }
        tracing::warn!(
            timeout_ms = timeout.as_millis(),
            "the request ran out of time"
        );
        ApiError::unavailable(format!(
            "the request did not finish within {} ms; what it changed, if anything, it changed completely. Retry later.",
            timeout.as_millis()
        ))
        .retry_after(1)
        .into_response()
    }
}
