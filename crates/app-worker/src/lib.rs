//! `cita-worker`: the queue side of seed 000's distributed path.
//!
//! # Layout
//!
//! - [`cli`]: subcommands and options (each also an environment variable).
//! - [`ops`]: `/health` and `/metrics` on `--metrics-addr`, and logs.
//!
//! [`run`] builds what a subcommand needs from the options and runs it
//! until the shutdown future resolves:
//!
//! - `relay`: the primary store's outbox → SNS topic ([`RelayWorker`]);
//! - `country --country CC`: that country's queue → its own database →
//!   `appointment.confirmed` on EventBridge ([`SqsCountryWorker`]);
//! - `confirmations`: the confirmations queue → primary store
//!   ([`SqsConfirmationWorker`]);
//! - `all`: every loop above in one process;
//! - `provision`: the AWS resources (and DynamoDB tables), idempotently.
//!
//! Shutdown (SIGINT/SIGTERM): consumers stop polling, finish the messages
//! in hand and never delete one they did not process; the relay finishes
//! its batch and flushes once more.

pub mod cli;
pub mod ops;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cita_adapters::aws::{
    EventBridgeConfirmationPublisher, SnsEventPublisher, SqsConfirmationWorker,
    SqsConsumerSettings, SqsCountryWorker, Topology, provision,
};
use cita_adapters::clock::SystemClock;
use cita_adapters::dynamodb::DynamoDatabase;
use cita_adapters::pipeline::RelayWorker;
use cita_adapters::select::{self, DatabaseKind, PoolConfig, Primary};
use cita_core::booking::BookingService;
use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryProcessor};
use cita_core::routing::{CountryCode, CountryRouter};
use tokio::sync::watch;

use crate::cli::{Cli, Command, Options};

/// A shutdown signal many loops can wait for.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal raised when `trigger` resolves.
    pub fn on(trigger: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            trigger.await;
            let _ = tx.send(true);
        });
        Self(rx)
    }

    /// Resolves once the signal is raised (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            // An error means the sender is gone: nobody can raise it any
            // more, which also means stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// What the workers share: options, router, AWS configuration, topology.
struct Context {
    options: Options,
    router: CountryRouter,
    aws: aws_config::SdkConfig,
    topology: Topology,
}

use cita_adapters::aws::aws_config;

impl Context {
    async fn new(options: Options) -> anyhow::Result<Self> {
        let router = CountryRouter::for_countries(options.countries.iter().copied(), "cita-");
        let topology = Topology::for_router(options.prefix.clone(), &router)?
            .with_visibility_timeout(options.visibility_timeout())?;
        let aws = select::load_aws_config(options.endpoint_url.as_deref()).await;
        Ok(Self {
            options,
            router,
            aws,
            topology,
        })
    }

    fn pool(&self) -> PoolConfig {
        PoolConfig {
            max_connections: self.options.database_max_connections,
            ..PoolConfig::default()
        }
    }

    fn consumer_settings(&self) -> SqsConsumerSettings {
        SqsConsumerSettings {
            wait_time: Duration::from_secs(self.options.wait_seconds),
            failure_retry_delay: self.options.retry_delay_seconds.map(Duration::from_secs),
            ..SqsConsumerSettings::for_topology(&self.topology)
        }
    }

    async fn primary(&self) -> anyhow::Result<Primary> {
        let url = self.options.database_url.as_deref().context(
            "this command needs the primary store: set CITA_DATABASE_URL or --database-url",
        )?;
        select::open_primary(url, self.pool(), Some(&self.aws)).await
    }

    async fn relay(&self) -> anyhow::Result<RelayWorker> {
        let primary = self.primary().await?;
        let publisher = SnsEventPublisher::from_topology(&self.aws, &self.topology)
            .await
            .context("finding the SNS topic (run `cita-worker provision` first)")?;
        Ok(RelayWorker::new(primary.outbox, Arc::new(publisher)))
    }

    async fn country(
        &self,
        country: CountryCode,
        url: Option<String>,
    ) -> anyhow::Result<SqsCountryWorker> {
        anyhow::ensure!(
            self.router.serves(country),
            "country {country} is not served (CITA_COUNTRIES / --countries)"
        );
        let var = format!("CITA_COUNTRY_{country}_DATABASE_URL");
        let url = match url {
            Some(url) => url,
            None => std::env::var(&var).with_context(|| {
                format!("country {country} needs its database: set {var} or --country-database-url")
            })?,
        };
        let name = format!("country-store-{}", country.lowercase());
        let (store, _) = select::open_country(&url, self.pool(), &name).await?;
        let confirmations =
            EventBridgeConfirmationPublisher::from_topology(&self.aws, &self.topology);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let processor = CountryProcessor::new(
            country,
            self.router.clone(),
            store,
            Arc::new(confirmations),
            clock,
        );
        SqsCountryWorker::from_topology(
            &self.aws,
            &self.topology,
            processor,
            self.consumer_settings(),
        )
        .await
    }

    async fn confirmations(&self) -> anyhow::Result<SqsConfirmationWorker> {
        let primary = self.primary().await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let service = Arc::new(BookingService::new(
            primary.providers,
            primary.appointments,
            primary.idempotency,
            self.router.clone(),
            clock,
        ));
        SqsConfirmationWorker::from_topology(
            &self.aws,
            &self.topology,
            ConfirmationHandler::new(service),
            self.consumer_settings(),
        )
        .await
    }

    fn relay_idle(&self) -> Duration {
        Duration::from_millis(self.options.relay_idle_ms.max(1))
    }
}

/// Runs the command of `cli` until `shutdown` is raised (`provision`
/// returns when done).
///
/// # Errors
/// A store, queue or topic that cannot be opened or found, or a failed
/// provisioning; failures while running are logged and retried instead.
pub async fn run(cli: Cli, shutdown: Shutdown) -> anyhow::Result<()> {
    let ctx = Context::new(cli.options).await?;
    match cli.command {
        Command::Provision => {
            let report = provision(&ctx.aws, &ctx.topology).await?;
            println!("{report}");
            if let Some(url) = ctx.options.database_url.as_deref()
                && DatabaseKind::of(url) == Ok(DatabaseKind::DynamoDb)
            {
                let db = DynamoDatabase::new(&ctx.aws, select::dynamodb_prefix(url)?)?;
                for (table, state) in db.ensure_tables().await? {
                    println!("dynamodb-table {table}: {state:?}");
                }
            }
            Ok(())
        }
        Command::Relay => {
            let relay = ctx.relay().await?;
            tracing::info!(topic = %ctx.topology.topic(), "relay running");
            relay.run(shutdown.wait(), ctx.relay_idle()).await;
            Ok(())
        }
        Command::Country {
            country,
            country_database_url,
        } => {
            let worker = ctx.country(country, country_database_url).await?;
            tracing::info!(queue = %worker.queue_name(), "country worker running");
            worker.run(shutdown.wait()).await;
            Ok(())
        }
        Command::Confirmations => {
            let worker = ctx.confirmations().await?;
            tracing::info!(queue = %worker.queue_name(), "confirmations worker running");
            worker.run(shutdown.wait()).await;
            Ok(())
        }
        Command::All => {
            // Everything is opened before anything runs: a missing database
            // or queue stops the start, not a loop later.
            let relay = ctx.relay().await?;
            let mut countries = Vec::new();
            for country in ctx.router.countries() {
                countries.push(ctx.country(country, None).await?);
            }
            let confirmations = ctx.confirmations().await?;
            let mut tasks = tokio::task::JoinSet::new();
            let idle = ctx.relay_idle();
            tasks.spawn(relay.run(shutdown.wait(), idle));
            for worker in countries {
                tracing::info!(queue = %worker.queue_name(), "country worker running");
                tasks.spawn(worker.run(shutdown.wait()));
            }
            tracing::info!(queue = %confirmations.queue_name(), "confirmations worker running");
            tasks.spawn(confirmations.run(shutdown.wait()));
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a worker loop failed");
                }
            }
            Ok(())
        }
    }
}

pub use cita_adapters::signal::shutdown_signal;
