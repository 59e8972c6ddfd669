//! `cita-http`: Cita's HTTP API on axum.
//!
//! # Layout
//!
//! - [`config`]: the typed configuration (defaults → `cita.toml` → `CITA_*`).
//! - [`telemetry`]: structured logs.
//! - [`system`]: the stores, lock, service and pipeline the configuration
//!   names: embedded mode (SQLite files, in-process pipeline) by default,
//!   PostgreSQL / MySQL / Redis by URL.
//! - [`http`]: routes, DTOs, errors, middleware, OpenAPI and Swagger UI.
//! - [`serve`]: the HTTP server (hyper), with its connection timeouts.
//! - [`metrics`]: the Prometheus recorder; [`observer`]: booking observations as metrics.
//!
//! [`Application`] builds everything from a [`config::Config`], binds the
//! listener (port 0 works: tests read [`Application::local_addr`]) and runs
//! until a shutdown future resolves.

// Handler modules are private; their items are `pub` for the OpenAPI derive.
#![allow(unreachable_pub)]

pub mod config;
pub mod http;
pub mod metrics;
pub mod observer;
pub mod serve;
pub mod system;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use cita_adapters::select::AwsConfig;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{AppState, RateLimit};
use crate::serve::ServerSettings;

/// A built application: bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    server: ServerSettings,
    pipeline: system::Background,
    rate_limit: Arc<RateLimit>,
    grace: Duration,
    /// Held until the application is dropped, after the pipeline's last flush.
    _data_lock: Option<system::DataLock>,
}

impl Application {
    /// Opens the stores, wires the service and pipeline, binds the listener.
    /// AWS services, when the configuration needs them, are reached with
    /// the standard AWS configuration (see [`Self::build_with_aws`]).
    ///
    /// # Errors
    /// A store that cannot be opened or an address that cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_aws(config, None).await
    }

    /// As [`Self::build`], with the AWS configuration given (region,
    /// credentials, endpoint) instead of loaded from the environment: for
    /// embedding and tests.
    ///
    /// # Errors
    /// As [`Self::build`].
    pub async fn build_with_aws(config: Config, aws: Option<AwsConfig>) -> anyhow::Result<Self> {
        let metrics = metrics::install();
        let system = system::System::open(&config, aws).await?;
        let rate_limit = Arc::new(RateLimit::new(
            config.rate_limit_per_second,
            config.rate_limit_burst,
        ));
        let state = AppState {
            service: Arc::clone(&system.service),
            outbox: Arc::clone(&system.outbox),
            readiness: Arc::new(system.readiness),
            metrics,
        };
        let router = http::router(
            state,
            Arc::clone(&rate_limit),
            Duration::from_millis(config.request_timeout_ms),
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Ok(Self {
            listener,
            router,
            server: ServerSettings {
                header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
            },
            pipeline: system.pipeline,
            _data_lock: system.data_lock,
            rate_limit,
            grace: Duration::from_secs(config.shutdown_grace_seconds),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish (up to the grace period), then lets the relay finish
    /// the batch in hand and flushes the outbox once more.
    ///
    /// # Errors
    /// None today: a connection's failure ends that connection only.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_pipeline, pipeline_shutdown) = cita_adapters::pipeline::Shutdown::new();
        let pipeline = tokio::spawn(self.pipeline.run(pipeline_shutdown));
        let janitor = {
            let limit = Arc::clone(&self.rate_limit);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    limit.forget_idle();
                }
            })
        };
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let server = serve::serve(self.listener, self.router, self.server, async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = signalled_tx.send(());
        });
        let grace = self.grace;
        tokio::select! {
            () = server => {}
            () = async move {
                let _ = signalled_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
            }
        };
        janitor.abort();
        stop_pipeline.raise();
        if let Err(e) = pipeline.await {
            tracing::error!(error = %e, "pipeline task failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

pub use cita_adapters::signal::shutdown_signal;
