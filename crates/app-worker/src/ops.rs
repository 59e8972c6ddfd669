//! Operations: logs, and `/health` and `/metrics` on `--metrics-addr`.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::Shutdown;
use crate::cli::LogFormat;

/// Installs the global log subscriber.
pub fn init_logs(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .with_context(|| format!("CITA_LOG / --log: {filter:?} is not a tracing filter"))?;
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_env_filter(filter);
    let installed = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // Already installed (tests): keep the first.
    let _ = installed;
    Ok(())
}

/// Installs the Prometheus recorder the workers' counters go to.
pub fn install_metrics() -> PrometheusHandle {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
    }
    metrics::describe_counter!(
        "cita_messages_consumed_total",
        "Messages handled successfully and deleted, per queue"
    );
    metrics::describe_counter!(
        "cita_messages_failed_total",
        "Messages whose handling failed (left for redelivery), per queue"
    );
    handle
}

/// Serves `/health` and `/metrics` on `addr` until `shutdown`.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--metrics-addr)"))?;
    tracing::info!(address = %listener.local_addr().unwrap_or(addr), "serving /health and /metrics");
    let router = Router::new()
        .route(
            "/health",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok"}"#,
                )
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                        .into_response()
                }
            }),
        );
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(shutdown.wait());
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the metrics server failed");
        }
    }))
}
