//! What `cita-http` runs, wired from the configuration.
//!
//! **Embedded mode**, the default (no `database_url`): the primary store in
//! `{data_dir}/cita.db`, each served country's store in
//! `{data_dir}/country-{cc}.db`, an in-process slot lock, and the outbox
//! relay delivering in-process to the country processors and the
//! confirmation handler ([`InlinePipeline`]): an event counts as published
//! only once its country recorded it and the confirmation was applied, so a
//! crash or stop at any point loses nothing. This process is then the only
//! writer of its data folder (a lock file enforces it), which is what makes
//! the caches of [`cache`] valid there and nowhere else.
//!
//! **Server stores**: `database_url` names the primary store (PostgreSQL,
//! MySQL/MariaDB or a SQLite file), `country_database_urls` any country's
//! own store (the others stay SQLite files in `data_dir`), `lock_url` a
//! Redis slot lock (`dynamodb://PREFIX` a DynamoDB primary store). Several
//! instances may share these; nothing is cached, and each instance's
//! pipeline delivers what it finds in the shared outbox (every step is
//! idempotent, so two relays delivering one event give one result).
//!
//! **Distributed mode** (`broker = aws`): no country processing here; the
//! outbox relay (unless `relay = false`) publishes to the SNS topic of
//! seed 000's topology, and `cita-worker` does the rest.

pub mod cache;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
#[cfg(feature = "aws")]
use cita_adapters::aws::{SnsEventPublisher, Topology};
use cita_adapters::clock::SystemClock;
use cita_adapters::memory::InMemorySlotLock;
use cita_adapters::pipeline::inline::InlinePipeline;
use cita_adapters::pipeline::{Pacing, RelayWorker, Shutdown};
use cita_adapters::select::{self, AwsConfig};
use cita_adapters::sqlite::{
    SqliteAppointmentStore, SqliteCountryStore, SqliteDatabase, SqliteIdempotencyStore,
    SqliteOptions, SqliteProviderStore,
};
use cita_core::booking::{AppointmentStore, BookingService, IdempotencyStore, SlotLock};
use cita_core::clock::Clock;
use cita_core::country::{ConfirmationHandler, CountryStore};
use cita_core::events::Outbox;
use cita_core::providers::ProviderStore;

use self::cache::{SingleWriterAppointmentCache, SingleWriterProviderCache};
use crate::config::{Broker, Config};
use crate::observer::MetricsObserver;
use cita_adapters::readiness::{Ping, ReadinessCheck};

/// Everything `cita-http` runs besides the HTTP server.
pub struct System {
    /// The use cases.
    pub service: Arc<BookingService>,
    /// The primary store's outbox.
    pub outbox: Arc<dyn Outbox>,
    /// What `/ready` checks.
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    /// What moves events out of the outbox.
    pub pipeline: Background,
    /// In embedded mode, the data folder's lock (`{data_dir}/cita.lock`),
    /// to be held for as long as the stores are in use.
    pub data_lock: Option<DataLock>,
}

/// What runs beside the HTTP server until shutdown.
pub enum Background {
    /// Relay → country processors → confirmations, in-process and durable
    /// through the outbox (`broker = inline`).
    Inline(InlinePipeline),
    /// The outbox relay publishing to SNS (`broker = aws`).
    Relay(RelayWorker),
    /// Nothing: `broker = aws` with `relay = false` (cita-worker relays).
    Nothing,
}

/// How often an idle relay looks at the outbox again.
const RELAY_IDLE: std::time::Duration = std::time::Duration::from_millis(50);

impl Background {
    /// Runs until `shutdown` is raised, then finishes the batch in hand and
    /// flushes the outbox once more.
    pub async fn run(self, shutdown: Shutdown) {
        match self {
            Self::Inline(pipeline) => pipeline.run(shutdown).await,
            Self::Relay(relay) => {
                cita_adapters::pipeline::run(&relay, &shutdown, Pacing::idle(RELAY_IDLE)).await;
            }
            Self::Nothing => shutdown.wait().await,
        }
    }
}

/// The primary store's ports, however opened.
struct PrimaryPorts {
    providers: Arc<dyn ProviderStore>,
    appointments: Arc<dyn AppointmentStore>,
    outbox: Arc<dyn Outbox>,
    idempotency: Arc<dyn IdempotencyStore>,
    ready: Arc<dyn ReadinessCheck>,
    data_lock: Option<DataLock>,
}

/// An exclusive lock on the data folder: a second process on the same
/// folder is refused at start, which keeps this process the single writer
/// the caches of [`cache`] rely on. Released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct DataLock {
    _file: std::fs::File,
}

impl DataLock {
    fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("cita.lock");
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => anyhow::anyhow!(
                "another process is using the data directory {} (it holds {}); \
                 embedded mode needs a data directory of its own",
                dir.display(),
                path.display()
            ),
            std::fs::TryLockError::Error(e) => {
                anyhow::Error::new(e).context(format!("locking {}", path.display()))
            }
        })?;
        Ok(Self { _file: file })
    }
}

async fn open(dir: &Path, file: &str, options: SqliteOptions) -> anyhow::Result<SqliteDatabase> {
    let path = dir.join(file);
    let text = path
        .to_str()
        .with_context(|| format!("data path {} is not UTF-8", path.display()))?;
    SqliteDatabase::connect_with(text, options).await
}

impl System {
    /// Opens the stores the configuration names (creating embedded mode's
    /// SQLite files if needed) and wires the service and the pipeline.
    ///
    /// # Errors
    /// A folder, file or database that cannot be created, opened, reached
    /// or migrated, or a data folder another process holds.
    pub async fn open(config: &Config, aws: Option<AwsConfig>) -> anyhow::Result<Self> {
        let router = config.router();
        let needs_aws = config.broker == Broker::Aws
            || config.database_url.as_ref().is_some_and(|u| {
                select::DatabaseKind::of(u.expose()) == Ok(select::DatabaseKind::DynamoDb)
            });
        let aws = match aws {
            Some(aws) => Some(aws),
            None if needs_aws => Some(load_aws_config(config).await?),
            None => None,
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let sqlite = SqliteOptions {
            synchronous: config.sqlite_synchronous.into(),
            ..SqliteOptions::default()
        };
        let needs_dir = config.database_url.is_none()
            || (config.broker == Broker::Inline
                && router
                    .countries()
                    .any(|c| !config.country_database_urls.contains_key(c.as_str())));
        if needs_dir {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("creating the data directory {}", config.data_dir.display())
            })?;
        }

        let primary = match &config.database_url {
            None => open_embedded_primary(&config.data_dir, sqlite).await?,
            Some(url) => {
                let p = select::open_primary(url.expose(), config.pool(), aws.as_ref()).await?;
                PrimaryPorts {
                    providers: p.providers,
                    appointments: p.appointments,
                    outbox: p.outbox,
                    idempotency: p.idempotency,
                    ready: p.ready,
                    data_lock: None,
                }
            }
        };
        let mut readiness = vec![primary.ready];
        let lock: Arc<dyn SlotLock> = match &config.lock_url {
            None => Arc::new(InMemorySlotLock::new()),
            Some(url) => {
                let (lock, ready) = select::open_lock(url.expose())?;
                readiness.push(ready);
                lock
            }
        };
        let service = Arc::new(
            BookingService::new(
                primary.providers,
                Arc::clone(&primary.appointments),
                primary.idempotency,
                router.clone(),
                Arc::clone(&clock),
            )
            .with_lock(lock)
            .with_observer(Arc::new(MetricsObserver)),
        );

        if config.broker == Broker::Aws {
            let pipeline = if config.relay {
                Background::Relay(RelayWorker::new(
                    Arc::clone(&primary.outbox),
                    sns_relay(config, aws.as_ref(), &router).await?,
                ))
            } else {
                Background::Nothing
            };
            if !config.country_database_urls.is_empty() {
                tracing::info!(
                    "broker = aws: country stores are cita-worker's; country_database_urls is not used here"
                );
            }
            return Ok(Self {
                service,
                outbox: primary.outbox,
                readiness,
                pipeline,
                data_lock: primary.data_lock,
            });
        }

        let mut country_stores: BTreeMap<_, Arc<dyn CountryStore>> = BTreeMap::new();
        for country in router.countries() {
            let name = format!("country-store-{}", country.lowercase());
            let (store, ready) = match config.country_database_urls.get(country.as_str()) {
                Some(url) => select::open_country(url.expose(), config.pool(), &name).await?,
                None => {
                    let file = format!("country-{}.db", country.lowercase());
                    let db = open(&config.data_dir, &file, sqlite).await?;
                    (
                        Arc::new(SqliteCountryStore::new(&db)) as Arc<dyn CountryStore>,
                        Ping::boxed(name, db),
                    )
                }
            };
            country_stores.insert(country, store);
            readiness.push(ready);
        }
        // No transport carries the external appointment.confirmed event
        // here, so confirmations write none to the outbox.
        let confirmations = ConfirmationHandler::new(primary.appointments, Arc::clone(&clock));
        let pipeline = InlinePipeline::new(
            Arc::clone(&primary.outbox),
            confirmations,
            &router,
            country_stores,
            clock,
        );
        Ok(Self {
            service,
            outbox: primary.outbox,
            readiness,
            pipeline: Background::Inline(pipeline),
            data_lock: primary.data_lock,
        })
    }
}

/// The AWS configuration from the standard sources and `aws_endpoint_url`.
#[cfg(any(feature = "dynamodb", feature = "aws"))]
async fn load_aws_config(config: &Config) -> anyhow::Result<AwsConfig> {
    Ok(select::load_aws_config(config.aws_endpoint_url.as_deref()).await)
}

#[cfg(not(any(feature = "dynamodb", feature = "aws")))]
async fn load_aws_config(_: &Config) -> anyhow::Result<AwsConfig> {
    Err(select::missing_feature("aws"))
}

/// The publisher of `broker = aws`: the SNS topic of the topology.
#[cfg(feature = "aws")]
async fn sns_relay(
    config: &Config,
    aws: Option<&AwsConfig>,
    router: &cita_core::routing::CountryRouter,
) -> anyhow::Result<Arc<dyn cita_core::events::EventPublisher>> {
    let sdk = aws.context("the AWS configuration is loaded for broker = aws")?;
    let topology = Topology::for_router(config.aws_prefix.clone(), router)?;
    let publisher = SnsEventPublisher::from_topology(sdk, &topology)
        .await
        .context("finding the SNS topic (run `cita-worker provision` once to create it)")?;
    Ok(Arc::new(publisher))
}

#[cfg(not(feature = "aws"))]
async fn sns_relay(
    _: &Config,
    _: Option<&AwsConfig>,
    _: &cita_core::routing::CountryRouter,
) -> anyhow::Result<Arc<dyn cita_core::events::EventPublisher>> {
    Err(select::missing_feature("aws"))
}

/// Embedded mode's primary store: `{dir}/cita.db`, this process its only
/// writer (the data folder's lock), so providers and availability ranges
/// are cached (see [`cache`]).
async fn open_embedded_primary(dir: &Path, sqlite: SqliteOptions) -> anyhow::Result<PrimaryPorts> {
    let data_lock = DataLock::acquire(dir)?;
    let db = open(dir, "cita.db", sqlite).await?;
    let appointments = Arc::new(SqliteAppointmentStore::new(&db));
    // Valid because this process is the only writer of its files (see `cache`).
    let providers = SingleWriterProviderCache::new(Arc::new(SqliteProviderStore::new(&db)));
    let cached_appointments = SingleWriterAppointmentCache::new(appointments.clone());
    Ok(PrimaryPorts {
        providers: Arc::new(providers),
        appointments: Arc::new(cached_appointments),
        outbox: appointments,
        idempotency: Arc::new(SqliteIdempotencyStore::new(&db)),
        ready: Ping::boxed("primary-store", db),
        data_lock: Some(data_lock),
    })
}
