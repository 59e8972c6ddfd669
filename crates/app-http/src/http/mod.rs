//! The HTTP layer: handlers translate HTTP ↔ core and nothing else. Each
//! module exposes `router()`; [`router`] merges them and adds the middleware.

mod appointments;
mod availability;
mod docs;
pub mod error;
mod json;
mod ops;
mod providers;
mod rate_limit;
pub mod request_id;
mod time;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use cita_core::booking::BookingService;
use cita_core::events::Outbox;
use metrics_exporter_prometheus::PrometheusHandle;

pub use ops::ReadinessCheck;
pub use rate_limit::RateLimit;

use error::ApiError;

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

/// The whole API with its middleware: request id + span + metrics outermost,
/// then per-client rate limiting (not on the operations endpoints).
pub fn router(state: AppState, rate_limit: Arc<RateLimit>) -> Router {
    let api = Router::new()
        .merge(providers::router())
        .merge(availability::router())
        .merge(appointments::router())
        .layer(middleware::from_fn_with_state(
            rate_limit,
            rate_limit::limit,
        ));
    Router::new()
        .merge(api)
        .merge(ops::router())
        .with_state(state)
        .merge(docs::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id::request_context))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
