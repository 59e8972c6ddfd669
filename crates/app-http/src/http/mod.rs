//! The HTTP layer: handlers translate HTTP ↔ core and nothing else. Each
//! module exposes `router()`; [`router`] merges them and adds the middleware.

mod appointments;
mod availability;
mod docs;
pub mod error;
mod json;
mod limits;
mod ops;
mod params;
mod providers;
mod rate_limit;
pub mod request_id;
mod time;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use cita_core::booking::BookingService;
use cita_core::events::Outbox;
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower::util::{MapRequestLayer, MapResponseLayer};
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use limits::MAX_PARSED_HEADERS;
pub use ops::ReadinessCheck;
pub use rate_limit::RateLimit;

use error::{ApiError, ProblemCode};

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub service: Arc<BookingService>,
    /// The primary store's outbox (for the backlog metrics).
    pub outbox: Arc<dyn Outbox>,
    /// Dependencies `/ready` checks.
    pub readiness: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// The whole API with its middleware (see [`layers`]); per-client rate
/// limiting applies to the API, not to the operations endpoints.
pub fn router(state: AppState, rate_limit: Arc<RateLimit>, request_timeout: Duration) -> Router {
    let api = Router::new()
        .merge(providers::router())
        .merge(availability::router())
        .merge(appointments::router())
        .layer(middleware::from_fn_with_state(
            rate_limit,
            rate_limit::limit,
        ));
    let routes = Router::new()
        .merge(api)
        .merge(ops::router())
        .with_state(state)
        .merge(docs::router());
    layers(routes, request_timeout)
}

/// The middleware every route and the fallbacks get, outermost first:
///
/// 1. the request id: a client's sensible `x-request-id` is kept, others
///    replaced by a UUIDv7 (`SetRequestId`), and it is sent back on every
///    response (`PropagateRequestId`);
/// 2. the access log: a span per request (id, method, route template) and
///    one `info` line when it is answered (status, latency); never the
///    URI's query, headers or bodies, which can hold patient data;
/// 3. the request scope (the id for error bodies) and the request metrics;
/// 4. gzip for answers of 1 KiB or more, when the client accepts it;
/// 5. a panic becomes a problem `500 internal_error`;
/// 6. the head limits (414, 431);
/// 7. the request timeout (`503 unavailable`).
pub fn layers(routes: Router, request_timeout: Duration) -> Router {
    let stack = ServiceBuilder::new()
        .layer(MapRequestLayer::new(request_id::drop_unacceptable_id))
        .layer(SetRequestIdLayer::x_request_id(request_id::MakeUuidV7))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<Body>| {
                    tracing::info_span!(
                        "request",
                        request_id = request_id::request_id_of(request),
                        method = %request.method(),
                        route = request_id::route_of(request),
                    )
                })
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                )
                // 5xx are logged with their cause where they are made.
                .on_failure(()),
        )
        .layer(middleware::from_fn(request_id::request_scope))
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(1024))),
        )
        .layer(CatchPanicLayer::custom(panic_problem))
        .layer(middleware::from_fn(limits::head_limits))
        .layer(MapResponseLayer::new(limits::timeout_problem(
            request_timeout,
        )))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(stack)
}

/// A handler panicked: logged, answered as an opaque 500.
fn panic_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    ApiError::internal(anyhow::anyhow!("a handler panicked: {what}")).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(ProblemCode::NotFound, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panic_is_an_opaque_problem_with_the_request_id() {
        async fn boom() -> &'static str {
            panic!("the secret is 42")
        }
        let app = layers(
            Router::new().route("/boom", get(boom)),
            Duration::from_secs(5),
        );
        let request = Request::builder()
            .uri("/boom")
            .header("x-request-id", "panic-1")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["x-request-id"], "panic-1");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "internal_error");
        assert_eq!(problem["requestId"], "panic-1");
        assert!(!String::from_utf8_lossy(&body).contains("42"), "{problem}");
    }

    #[tokio::test]
    async fn a_request_out_of_time_is_a_503_problem() {
        async fn stuck() -> &'static str {
            std::future::pending::<()>().await;
            "never"
        }
        let app = layers(
            Router::new().route("/stuck", get(stuck)),
            Duration::from_millis(20),
        );
        let request = Request::builder()
            .uri("/stuck")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["retry-after"], "1");
        assert!(response.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "unavailable");
        assert!(
            problem["detail"].as_str().unwrap().contains("20 ms"),
            "{problem}"
        );
    }
}
