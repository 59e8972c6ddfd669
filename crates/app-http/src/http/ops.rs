//! Operations endpoints: `/health`, `/ready`, `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};

pub use cita_adapters::readiness::ReadinessCheck;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// `{"status":"ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves.
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process serves", body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: every configured dependency answers.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = Object),
        (status = 503, description = "unavailable: names the failing dependency", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    let checks = state.readiness.iter().map(|c| {
        let c = Arc::clone(c);
        async move {
            let result = tokio::time::timeout(Duration::from_secs(2), c.check()).await;
            let failure = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some("no answer within 2 s".to_owned()),
            };
            (c.name().to_owned(), failure)
        }
    });
    let results = futures_join_all(checks).await;
    let failing: Vec<_> = results.iter().filter(|(_, f)| f.is_some()).collect();
    if let Some((name, Some(why))) = failing.first() {
        tracing::warn!(dependency = %name, error = %why, "readiness check failed");
        let names: Vec<&str> = failing.iter().map(|(n, _)| n.as_str()).collect();
        return Err(ApiError::unavailable(format!(
            "not ready: {}",
            names.join(", ")
        )));
    }
    let checks: serde_json::Map<_, _> =
        results.into_iter().map(|(n, _)| (n, json!("ok"))).collect();
    Ok(axum::Json(json!({ "status": "ready", "checks": checks })).into_response())
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut n = 0usize;
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) });
        n += 1;
    }
    let mut out: Vec<Option<F::Output>> = (0..n).map(|_| None).collect();
    while let Some(Ok((i, v))) = set.join_next().await {
        out[i] = Some(v);
    }
    out.into_iter().flatten().collect()
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.outbox.backlog().await {
        Ok(backlog) => {
            metrics::gauge!("cita_outbox_backlog").set(backlog.pending as f64);
            let age = backlog.oldest.map_or(0.0, |t| {
                jiff::Timestamp::now()
                    .duration_since(t)
                    .as_secs_f64()
                    .max(0.0)
            });
            metrics::gauge!("cita_outbox_oldest_age_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "could not read the outbox backlog"),
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
