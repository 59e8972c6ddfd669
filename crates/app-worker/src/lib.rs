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

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cita_adapters::aws::{
    EventBridgeConfirmationPublisher, SnsEventPublisher, SqsConfirmationWorker,
    SqsConsumerSettings, SqsCountryWorker, Topology, confirmation_worker, country_worker,
    provision,
};
use cita_adapters::clock::SystemClock;
use cita_adapters::dynamodb::DynamoDatabase;
pub use cita_adapters::pipeline::Shutdown;
use cita_adapters::pipeline::{Pacing, RelayWorker, Worker, run as run_worker, run_all};
use cita_adapters::select::{self, DatabaseKind, PoolConfig, Primary};
use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryProcessor};
use cita_core::routing::{CountryCode, CountryRouter};

use crate::cli::{Cli, Command, Options};

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
        let router = CountryRouter::for_countries(options.countries.iter().copied());
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
        country_worker(
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
        // The topic carries the external appointment.confirmed event.
        let handler = ConfirmationHandler::new(primary.appointments, clock).announcing(true);
        confirmation_worker(&self.aws, &self.topology, handler, self.consumer_settings()).await
    }

    /// How the loops pace themselves: the relay looks at an empty outbox
    /// again after `relay_idle_ms`; consumers long-poll, so their idle wait
    /// only separates two polls.
    fn pacing(&self) -> Pacing {
        Pacing::idle(Duration::from_millis(self.options.relay_idle_ms.max(1)))
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
            run_worker(&relay, &shutdown, ctx.pacing()).await;
            Ok(())
        }
        Command::Country {
            country,
            country_database_url,
        } => {
            let worker = ctx.country(country, country_database_url).await?;
            run_worker(&worker, &shutdown, ctx.pacing()).await;
            Ok(())
        }
        Command::Confirmations => {
            let worker = ctx.confirmations().await?;
            run_worker(&worker, &shutdown, ctx.pacing()).await;
            Ok(())
        }
        Command::All => {
            // Everything is opened before anything runs: a missing database
            // or queue stops the start, not a loop later.
            let mut workers: Vec<Arc<dyn Worker>> = vec![Arc::new(ctx.relay().await?)];
            for country in ctx.router.countries() {
                workers.push(Arc::new(ctx.country(country, None).await?));
            }
            workers.push(Arc::new(ctx.confirmations().await?));
            run_all(workers, shutdown, ctx.pacing()).await;
            Ok(())
        }
    }
}

pub use cita_adapters::signal::shutdown_signal;
