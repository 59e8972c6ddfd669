//! Opening stores by URL, for the binaries: `sqlite:…`, `postgres://…`,
//! `mysql://…` (or `mariadb://…`) for the primary store and each country's
//! store, `dynamodb://<table prefix>` for the primary store on DynamoDB,
//! `redis://…` for the slot lock. Each opened dependency comes with
//! its readiness check. A scheme whose adapter this build lacks (its cargo
//! feature is off) is refused with a message naming the feature.
//!
//! Error messages never quote a URL: it may carry a password.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "dynamodb"
))]
use async_trait::async_trait;
use cita_core::booking::{AppointmentStore, IdempotencyStore, SlotLock};
use cita_core::country::CountryStore;
use cita_core::events::Outbox;
use cita_core::providers::ProviderStore;

use crate::readiness::ReadinessCheck;
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "dynamodb"
))]
use crate::readiness::{Ping, Pingable};

/// Which adapter a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:path`, `sqlite://path` (created if missing).
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
    /// `mysql://…` or `mariadb://…` (MariaDB speaks the MySQL protocol).
    MySql,
    /// `dynamodb://PREFIX`: the tables `PREFIX-providers`, … (primary
    /// store only), reached with the standard AWS configuration.
    DynamoDb,
}

impl DatabaseKind {
    /// The kind a URL names by its scheme.
    ///
    /// # Errors
    /// The scheme is none of the known ones (the message lists them).
    pub fn of(url: &str) -> Result<Self, UnknownScheme> {
        let scheme = url
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase())
            .unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "dynamodb" => Ok(Self::DynamoDb),
            _ => Err(UnknownScheme(scheme)),
        }
    }
}

/// A database URL with a scheme no adapter serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown database URL scheme {0:?} (known: sqlite:, postgres://, mysql://, mariadb://, dynamodb://)"
)]
pub struct UnknownScheme(pub String);

/// Pool sizing for server databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Connections per pool at most.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The primary store's ports over one database.
pub struct Primary {
    /// Providers.
    pub providers: Arc<dyn ProviderStore>,
    /// Appointments.
    pub appointments: Arc<dyn AppointmentStore>,
    /// The outbox of the same database.
    pub outbox: Arc<dyn Outbox>,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Its readiness check (`primary-store`).
    pub ready: Arc<dyn ReadinessCheck>,
}

impl Primary {
    /// The primary store of one database: `appointments` is its outbox too.
    #[cfg(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "dynamodb"
    ))]
    fn of<A, T>(
        providers: Arc<dyn ProviderStore>,
        appointments: A,
        idempotency: Arc<dyn IdempotencyStore>,
        db: T,
    ) -> Self
    where
        A: AppointmentStore + Outbox,
        T: Pingable,
    {
        let appointments = Arc::new(appointments);
        Self {
            providers,
            appointments: appointments.clone(),
            outbox: appointments,
            idempotency,
            ready: Ping::boxed("primary-store", db),
        }
    }
}

/// The table prefix of a `dynamodb://PREFIX` URL (`cita` when empty).
///
/// # Errors
/// The URL is not a DynamoDB one.
pub fn dynamodb_prefix(url: &str) -> anyhow::Result<&str> {
    let (scheme, rest) = url
        .split_once("://")
        .context("a DynamoDB URL looks like dynamodb://PREFIX")?;
    anyhow::ensure!(
        scheme.eq_ignore_ascii_case("dynamodb"),
        "not a DynamoDB URL (dynamodb://PREFIX)"
    );
    let prefix = rest.trim_end_matches('/');
    Ok(if prefix.is_empty() { "cita" } else { prefix })
}

/// The AWS configuration from the standard sources (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials from the default chain), with the
/// endpoint replaced by `endpoint_url` when given (a local emulator).
#[cfg(any(feature = "dynamodb", feature = "aws"))]
pub async fn load_aws_config(endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The error for a configuration that needs an adapter this build lacks,
/// naming the cargo feature and the `full` build that has every adapter.
pub fn missing_feature(feature: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "this build of Cita has no {feature} support: build it with the cargo feature \
         `{feature}`, or `full` for every store and broker \
         (`cargo run --release -p cita-http --features full`)"
    )
}

/// `Pingable` by the type's own inherent `ping`.
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "dynamodb"
))]
macro_rules! pingable {
    ($t:ty) => {
        #[async_trait]
        impl Pingable for $t {
            async fn ping(&self) -> anyhow::Result<()> {
                <$t>::ping(self).await
            }
        }
    };
}

#[cfg(feature = "sqlite")]
pingable!(crate::sqlite::SqliteDatabase);

#[cfg(feature = "postgres")]
pingable!(crate::postgres::PostgresDatabase);

#[cfg(feature = "mysql")]
pingable!(crate::mysql::MySqlDatabase);

#[cfg(feature = "redis")]
pingable!(crate::redis::RedisSlotLock);

#[cfg(feature = "mysql")]
fn mysql_url(url: &str) -> String {
    // sqlx knows the scheme as mysql://; MariaDB speaks the same protocol.
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    }
}

/// Opens the primary store at `url`, migrating its schema. A DynamoDB
/// store uses `aws` (required for `dynamodb://`) and expects its tables to
/// exist (`cita-worker provision` creates them).
///
/// # Errors
/// An unknown scheme, a feature this build lacks, a `dynamodb://` URL
/// without `aws`, or a database that cannot be reached or migrated.
#[cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "dynamodb")),
    allow(unused_variables)
)]
pub async fn open_primary(
    url: &str,
    pool: PoolConfig,
    aws: Option<&AwsConfig>,
) -> anyhow::Result<Primary> {
    match DatabaseKind::of(url)? {
        #[cfg(feature = "dynamodb")]
        DatabaseKind::DynamoDb => {
            use crate::dynamodb::{
                DynamoAppointmentStore, DynamoDatabase, DynamoIdempotencyStore, DynamoProviderStore,
            };
            let aws = aws.context("a DynamoDB primary store needs the AWS configuration")?;
            let db = DynamoDatabase::new(aws, dynamodb_prefix(url)?)?;
            Ok(Primary::of(
                Arc::new(DynamoProviderStore::new(&db)),
                DynamoAppointmentStore::new(&db),
                Arc::new(DynamoIdempotencyStore::new(&db)),
                db,
            ))
        }
        #[cfg(feature = "sqlite")]
        DatabaseKind::Sqlite => {
            use crate::sqlite::{
                SqliteAppointmentStore, SqliteDatabase, SqliteIdempotencyStore, SqliteProviderStore,
            };
            let db = SqliteDatabase::connect(url)
                .await
                .context("opening the primary SQLite store")?;
            Ok(Primary::of(
                Arc::new(SqliteProviderStore::new(&db)),
                SqliteAppointmentStore::new(&db),
                Arc::new(SqliteIdempotencyStore::new(&db)),
                db,
            ))
        }
        #[cfg(feature = "postgres")]
        DatabaseKind::Postgres => {
            use crate::postgres::{
                PostgresAppointmentStore, PostgresIdempotencyStore, PostgresProviderStore,
            };
            let db = connect_postgres(url, pool)
                .await
                .context("opening the primary PostgreSQL store")?;
            Ok(Primary::of(
                Arc::new(PostgresProviderStore::cached(&db)),
                PostgresAppointmentStore::new(&db),
                Arc::new(PostgresIdempotencyStore::new(&db)),
                db,
            ))
        }
        #[cfg(feature = "mysql")]
        DatabaseKind::MySql => {
            use crate::mysql::{MySqlAppointmentStore, MySqlIdempotencyStore, MySqlProviderStore};
            let db = connect_mysql(url, pool)
                .await
                .context("opening the primary MySQL store")?;
            Ok(Primary::of(
                Arc::new(MySqlProviderStore::new(&db)),
                MySqlAppointmentStore::new(&db),
                Arc::new(MySqlIdempotencyStore::new(&db)),
                db,
            ))
        }
        #[allow(unreachable_patterns)]
        other => Err(missing_feature(feature_of(other))),
    }
}

/// A PostgreSQL pool with `pool`'s size and acquire timeout.
#[cfg(feature = "postgres")]
async fn connect_postgres(
    url: &str,
    pool: PoolConfig,
) -> anyhow::Result<crate::postgres::PostgresDatabase> {
    use crate::postgres::{PoolSettings, PostgresDatabase};
    let settings = PoolSettings {
        max_connections: pool.max_connections,
        acquire_timeout: pool.acquire_timeout,
        ..PoolSettings::default()
    };
    PostgresDatabase::connect(url, settings).await
}

/// A MySQL/MariaDB pool with `pool`'s size and acquire timeout.
#[cfg(feature = "mysql")]
async fn connect_mysql(url: &str, pool: PoolConfig) -> anyhow::Result<crate::mysql::MySqlDatabase> {
    use crate::mysql::{MySqlDatabase, MySqlPoolSettings};
    let settings = MySqlPoolSettings {
        max_connections: pool.max_connections,
        acquire_timeout: pool.acquire_timeout,
        ..MySqlPoolSettings::default()
    };
    MySqlDatabase::connect(&mysql_url(url), &settings).await
}

fn feature_of(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Sqlite => "sqlite",
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::MySql => "mysql",
        DatabaseKind::DynamoDb => "dynamodb",
    }
}

/// The AWS SDK's configuration (region, credentials, endpoint), or a
/// unit type `()` in builds without any AWS adapter.
#[cfg(any(feature = "dynamodb", feature = "aws"))]
pub type AwsConfig = aws_config::SdkConfig;
/// The AWS SDK's configuration (region, credentials, endpoint), or a
/// unit type `()` in builds without any AWS adapter.
#[cfg(not(any(feature = "dynamodb", feature = "aws")))]
pub type AwsConfig = ();

#[cfg(feature = "dynamodb")]
pingable!(crate::dynamodb::DynamoDatabase);

/// Opens a country's own store at `url`, migrating its schema; `name` is
/// its readiness check's name (`country-store-pe`).
///
/// # Errors
/// As [`open_primary`].
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql")),
    allow(unused_variables)
)]
pub async fn open_country(
    url: &str,
    pool: PoolConfig,
    name: &str,
) -> anyhow::Result<(Arc<dyn CountryStore>, Arc<dyn ReadinessCheck>)> {
    match DatabaseKind::of(url)? {
        DatabaseKind::DynamoDb => {
            anyhow::bail!(
                "{name}: DynamoDB serves as the primary store only (use sqlite:, postgres:// or mysql:// for a country)"
            )
        }
        #[cfg(feature = "sqlite")]
        DatabaseKind::Sqlite => {
            use crate::sqlite::{SqliteCountryStore, SqliteDatabase};
            let db = SqliteDatabase::connect(url)
                .await
                .with_context(|| format!("opening {name} (SQLite)"))?;
            Ok((
                Arc::new(SqliteCountryStore::new(&db)),
                Ping::boxed(name, db),
            ))
        }
        #[cfg(feature = "postgres")]
        DatabaseKind::Postgres => {
            use crate::postgres::PostgresCountryStore;
            let db = connect_postgres(url, pool)
                .await
                .with_context(|| format!("opening {name} (PostgreSQL)"))?;
            Ok((
                Arc::new(PostgresCountryStore::new(&db)),
                Ping::boxed(name, db),
            ))
        }
        #[cfg(feature = "mysql")]
        DatabaseKind::MySql => {
            use crate::mysql::MySqlCountryStore;
            let db = connect_mysql(url, pool)
                .await
                .with_context(|| format!("opening {name} (MySQL)"))?;
            Ok((Arc::new(MySqlCountryStore::new(&db)), Ping::boxed(name, db)))
        }
        #[allow(unreachable_patterns)]
        other => Err(missing_feature(feature_of(other))),
    }
}

/// Opens the slot lock at `url` (`redis://…`; keys prefixed `cita:`). The
/// connection is made lazily, so the service starts while Redis is down and
/// books through the stores' own guarantee meanwhile.
///
/// # Errors
/// Another scheme, a build without the `redis` feature, or a URL that does
/// not parse.
pub fn open_lock(url: &str) -> anyhow::Result<(Arc<dyn SlotLock>, Arc<dyn ReadinessCheck>)> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        #[cfg(feature = "redis")]
        Some("redis" | "rediss") => {
            use crate::redis::{RedisLockSettings, RedisSlotLock};
            let lock = Arc::new(RedisSlotLock::new(
                url,
                "cita:",
                RedisLockSettings::default(),
            )?);
            Ok((lock.clone(), Ping::boxed("slot-lock", lock)))
        }
        #[cfg(not(feature = "redis"))]
        Some("redis" | "rediss") => Err(missing_feature("redis")),
        _ => anyhow::bail!("unknown lock URL scheme (known: redis://, rediss://)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_select_adapters() {
        assert_eq!(
            DatabaseKind::of("sqlite://data/x.db"),
            Ok(DatabaseKind::Sqlite)
        );
        assert_eq!(DatabaseKind::of("sqlite:x.db"), Ok(DatabaseKind::Sqlite));
        assert_eq!(
            DatabaseKind::of("postgresql://u@h/db"),
            Ok(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::of("MariaDB://root@h/db"),
            Ok(DatabaseKind::MySql)
        );
        let e = DatabaseKind::of("oracle://scott:tiger@h").unwrap_err();
        assert!(!e.to_string().contains("tiger"), "{e}");
        assert!(DatabaseKind::of("no-scheme").is_err());
        assert_eq!(
            DatabaseKind::of("dynamodb://cita"),
            Ok(DatabaseKind::DynamoDb)
        );
        assert_eq!(dynamodb_prefix("dynamodb://shop-1").unwrap(), "shop-1");
        assert_eq!(dynamodb_prefix("dynamodb://").unwrap(), "cita");
        assert!(dynamodb_prefix("postgres://h/db").is_err());
        assert!(open_lock("memcached://h").is_err());
    }
}
