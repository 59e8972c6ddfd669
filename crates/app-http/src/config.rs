//! Configuration: a typed struct, layered defaults → optional `cita.toml`
//! (or the file named by `CITA_CONFIG`) → `CITA_*` environment variables.
//! Every key is documented in `docs/configuration.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cita_adapters::DEFAULT_LOG;
use cita_adapters::select::{DatabaseKind, PoolConfig};
use cita_adapters::sqlite::Synchronous;
use cita_core::routing::{CountryCode, CountryRouter};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, coloured when on a terminal.
    Pretty,
}

/// How embedded mode's SQLite files make a commit durable
/// (`PRAGMA synchronous`; the files are in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Sync the WAL at every commit: a commit survives a power loss or OS
    /// crash. Each commit waits for the disk, which bounds write throughput.
    Full,
    /// Sync at checkpoints only (SQLite's recommendation for WAL): a commit
    /// survives a crash of this process; a power loss or OS crash may lose
    /// the last commits, never corrupting the file.
    Normal,
}

impl From<SqliteSynchronous> for Synchronous {
    fn from(s: SqliteSynchronous) -> Self {
        match s {
            SqliteSynchronous::Full => Synchronous::Full,
            SqliteSynchronous::Normal => Synchronous::Normal,
        }
    }
}

/// Where appointment events go after the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Broker {
    /// In-process: the relay hands each event to the country processors
    /// and the confirmation handler running inside `cita-http`.
    Inline,
    /// AWS (seed 000's topology): the relay publishes to the SNS topic;
    /// `cita-worker` consumes the country queues and the confirmations.
    Aws,
}

/// A database or lock URL. It may carry a password, so `Debug` shows it
/// with the password masked; [`Self::expose`] gives the URL itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// A URL (used as given).
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL, password included: for opening the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, for messages and logs.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.clone();
        };
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
                None => url.clone(),
            },
            None => url.clone(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// Everything `cita-http` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on (`CITA_LISTEN`, default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Embedded mode's folder for its SQLite files (`CITA_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// Served countries, comma-separated (`CITA_COUNTRIES`, default `PE,CL`).
    #[serde(deserialize_with = "countries", serialize_with = "countries_out")]
    pub countries: Vec<CountryCode>,
    /// Log format (`CITA_LOG_FORMAT`: `json` or `pretty`, default `pretty`).
    pub log_format: LogFormat,
    /// Log filter (`CITA_LOG`, tracing-subscriber syntax, default
    /// [`DEFAULT_LOG`]).
    pub log: String,
    /// Sustained requests per second per client IP; 0 disables limiting
    /// (`CITA_RATE_LIMIT_PER_SECOND`, default 1000).
    pub rate_limit_per_second: u32,
    /// Burst allowance per client IP (`CITA_RATE_LIMIT_BURST`, default 2000).
    pub rate_limit_burst: u32,
    /// How long shutdown waits for in-flight requests, in seconds
    /// (`CITA_SHUTDOWN_GRACE_SECONDS`, default 10).
    pub shutdown_grace_seconds: u64,
    /// How long a request may take from its head to its answer, body
    /// reading included, before it is answered `503 unavailable`, in
    /// milliseconds (`CITA_REQUEST_TIMEOUT_MS`, default 30000).
    pub request_timeout_ms: u64,
    /// How long a client may take to send a request head, and how long an
    /// idle HTTP/1 keep-alive connection stays open, in milliseconds
    /// (`CITA_HEADER_READ_TIMEOUT_MS`, default 30000).
    pub header_read_timeout_ms: u64,
    /// Commit durability of embedded mode's SQLite files
    /// (`CITA_SQLITE_SYNCHRONOUS`: `full` or `normal`, default `normal`).
    pub sqlite_synchronous: SqliteSynchronous,
    /// The primary store (`CITA_DATABASE_URL`: `sqlite:…`, `postgres://…`,
    /// `mysql://…`/`mariadb://…`). Absent: embedded mode's `cita.db` in
    /// `data_dir`.
    pub database_url: Option<SecretUrl>,
    /// Each country's own store, by upper-case country code
    /// (`CITA_COUNTRY_<CC>_DATABASE_URL`, or a `[country_database_urls]`
    /// table in `cita.toml`). A served country without one keeps its
    /// store in `data_dir/country-<cc>.db`.
    pub country_database_urls: BTreeMap<String, SecretUrl>,
    /// The slot lock (`CITA_LOCK_URL`: `redis://…`). Absent: an in-process
    /// lock (enough for one instance; the stores refuse overlaps anyway).
    pub lock_url: Option<SecretUrl>,
    /// Connections per server database pool at most
    /// (`CITA_DATABASE_MAX_CONNECTIONS`, default 16).
    pub database_max_connections: u32,
    /// How long a request waits for a pooled connection, in milliseconds
    /// (`CITA_DATABASE_ACQUIRE_TIMEOUT_MS`, default 5000).
    pub database_acquire_timeout_ms: u64,
    /// Where events go (`CITA_BROKER`: `inline` or `aws`, default `inline`).
    pub broker: Broker,
    /// With `broker = aws`, whether this process runs the outbox relay to
    /// SNS (`CITA_RELAY`, default `true`; `false` leaves it to
    /// `cita-worker relay`).
    pub relay: bool,
    /// Prefix of the AWS resource names (`CITA_AWS_PREFIX`, default `cita`:
    /// topic `cita-appointments`, …).
    pub aws_prefix: String,
    /// An AWS endpoint replacing the standard one for every service
    /// (`CITA_AWS_ENDPOINT_URL`; without it `AWS_ENDPOINT_URL` and the
    /// standard AWS configuration apply), e.g. a local emulator.
    pub aws_endpoint_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            countries: vec![CountryCode::PE, CountryCode::CL],
            log_format: LogFormat::Pretty,
            log: DEFAULT_LOG.into(),
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            shutdown_grace_seconds: 10,
            request_timeout_ms: 30_000,
            header_read_timeout_ms: 30_000,
            sqlite_synchronous: SqliteSynchronous::Normal,
            database_url: None,
            country_database_urls: BTreeMap::new(),
            lock_url: None,
            database_max_connections: 16,
            database_acquire_timeout_ms: 5000,
            broker: Broker::Inline,
            relay: true,
            aws_prefix: "cita".into(),
            aws_endpoint_url: None,
        }
    }
}

/// `CITA_COUNTRY_<CC>_DATABASE_URL` → `CC` (as written).
fn country_url_env(key: &str) -> Option<&str> {
    key.strip_prefix("CITA_COUNTRY_")?
        .strip_suffix("_DATABASE_URL")
        .filter(|cc| !cc.is_empty())
}

fn countries<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CountryCode>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        List(Vec<String>),
    }
    let raw = match Raw::deserialize(d)? {
        Raw::Text(s) => s.split(',').map(|c| c.trim().to_owned()).collect(),
        Raw::List(l) => l,
    };
    let mut out = Vec::new();
    for c in raw.iter().filter(|c| !c.is_empty()) {
        let code = CountryCode::parse(c).map_err(|_| {
            serde::de::Error::custom(format!(
                "{c:?} is not an ISO 3166-1 alpha-2 code in upper case (e.g. PE,CL)"
            ))
        })?;
        if !out.contains(&code) {
            out.push(code);
        }
    }
    if out.is_empty() {
        return Err(serde::de::Error::custom(
            "at least one country must be served (e.g. PE,CL)",
        ));
    }
    Ok(out)
}

fn countries_out<S: serde::Serializer>(c: &[CountryCode], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(c.iter().map(CountryCode::as_str))
}

/// A configuration value was refused: the message names the key and what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads defaults, then `cita.toml` (or `$CITA_CONFIG`) if present, then `CITA_*`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and what it allows.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(
            std::env::var_os("CITA_CONFIG")
                .map(PathBuf::from)
                .as_deref(),
        )
    }

    /// As [`Self::load`] with the file given (`--config`, which must then
    /// exist) instead of `$CITA_CONFIG`; `None` reads `cita.toml` if present.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and what it allows, or the file
    /// named that does not exist.
    pub fn load_from(named: Option<&Path>) -> Result<Self, ConfigError> {
        let file = named.map_or_else(|| PathBuf::from("cita.toml"), Path::to_path_buf);
        if named.is_some() && !file.exists() {
            return Err(ConfigError(format!(
                "the configuration file {} does not exist (--config / CITA_CONFIG)",
                file.display()
            )));
        }
        // Per-country URLs have the country inside the variable's name, which
        // the flat `CITA_<KEY>` mapping cannot express: they are gathered here.
        let country_urls: BTreeMap<String, String> = std::env::vars()
            .filter_map(|(k, v)| country_url_env(&k).map(|cc| (cc.to_owned(), v)))
            .collect();
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&file))
            .merge(Env::prefixed("CITA_").ignore(&["CONFIG"]).filter(|k| {
                let key = k.as_str().to_ascii_uppercase();
                // cita-worker's own settings, when both share an environment.
                !key.starts_with("WORKER_") && country_url_env(&format!("CITA_{key}")).is_none()
            }));
        for (cc, url) in country_urls {
            figment = figment.merge(Serialized::default(
                &format!("country_database_urls.{cc}"),
                url,
            ));
        }
        Self::extract(&figment)
    }

    fn extract(figment: &Figment) -> Result<Self, ConfigError> {
        let config = figment.extract::<Config>().map_err(|e| {
            let messages: Vec<String> = e
                .into_iter()
                .map(|e| {
                    let key = e.path.join(".");
                    let key = if key.is_empty() {
                        "(top level)".to_owned()
                    } else {
                        format!("CITA_{} / {key}", key.to_ascii_uppercase())
                    };
                    format!(
                        "{key}: {} ({})",
                        e.kind,
                        allowed(e.path.first().map_or("", String::as_str))
                    )
                })
                .collect();
            ConfigError(messages.join("; "))
        })?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log) {
            return Err(ConfigError(format!(
                "CITA_LOG / log: {e} ({})",
                allowed("log")
            )));
        }
        if let Some(url) = &config.database_url {
            DatabaseKind::of(url.expose())
                .map_err(|e| ConfigError(format!("CITA_DATABASE_URL / database_url: {e}")))?;
        }
        for (cc, url) in &config.country_database_urls {
            let key = format!("CITA_COUNTRY_{cc}_DATABASE_URL / country_database_urls.{cc}");
            let served = CountryCode::parse(cc)
                .ok()
                .filter(|c| config.countries.contains(c));
            if served.is_none() {
                return Err(ConfigError(format!(
                    "{key}: {cc:?} is not a served country (CITA_COUNTRIES is {})",
                    config
                        .countries
                        .iter()
                        .map(CountryCode::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                )));
            }
            match DatabaseKind::of(url.expose()) {
                Ok(DatabaseKind::DynamoDb) => {
                    return Err(ConfigError(format!(
                        "{key}: DynamoDB serves as the primary store only (use sqlite:, postgres:// or mysql://)"
                    )));
                }
                Ok(_) => {}
                Err(e) => return Err(ConfigError(format!("{key}: {e}"))),
            }
        }
        let prefix_ok = (1..=50).contains(&config.aws_prefix.len())
            && config
                .aws_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !prefix_ok {
            return Err(ConfigError(format!(
                "CITA_AWS_PREFIX / aws_prefix: {:?} ({})",
                config.aws_prefix,
                allowed("aws_prefix")
            )));
        }
        if let Some(url) = &config.lock_url {
            let scheme = url.expose().split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("redis" | "rediss")) {
                return Err(ConfigError(format!(
                    "CITA_LOCK_URL / lock_url: not a Redis URL ({})",
                    allowed("lock_url")
                )));
            }
        }
        for (value, key, name) in [
            (
                config.request_timeout_ms,
                "CITA_REQUEST_TIMEOUT_MS",
                "request_timeout_ms",
            ),
            (
                config.header_read_timeout_ms,
                "CITA_HEADER_READ_TIMEOUT_MS",
                "header_read_timeout_ms",
            ),
        ] {
            if value == 0 {
                return Err(ConfigError(format!(
                    "{key} / {name}: must be at least 1 ({})",
                    allowed(name)
                )));
            }
        }
        if config.database_max_connections == 0 {
            return Err(ConfigError(format!(
                "CITA_DATABASE_MAX_CONNECTIONS / database_max_connections: must be at least 1 ({})",
                allowed("database_max_connections")
            )));
        }
        Ok(config)
    }

    /// The pool settings for server databases.
    pub fn pool(&self) -> PoolConfig {
        PoolConfig {
            max_connections: self.database_max_connections,
            acquire_timeout: Duration::from_millis(self.database_acquire_timeout_ms),
        }
    }

    /// The served countries as a router.
    pub fn router(&self) -> CountryRouter {
        CountryRouter::for_countries(self.countries.iter().copied())
    }
}

fn allowed(key: &str) -> &'static str {
    match key {
        "listen" => "an address:port such as 127.0.0.1:8080 or 0.0.0.0:0",
        "data_dir" => "a folder path",
        "countries" => "comma-separated ISO 3166-1 alpha-2 codes such as PE,CL",
        "log_format" => "json or pretty",
        "log" => "a tracing filter such as info or cita_http=debug,info",
        "rate_limit_per_second" | "rate_limit_burst" => "a whole number, 0 to 4294967295",
        "shutdown_grace_seconds" => "a whole number of seconds",
        "request_timeout_ms" | "header_read_timeout_ms" => {
            "a whole number of milliseconds, at least 1"
        }
        "sqlite_synchronous" => "full or normal",
        "database_url" => "sqlite:PATH, postgres://…, mysql://…, mariadb://… or dynamodb://PREFIX",
        "broker" => "inline or aws",
        "relay" => "true or false",
        "aws_prefix" => "1 to 50 ASCII letters, digits, - or _",
        "aws_endpoint_url" => "an http(s) URL such as http://127.0.0.1:4566",
        "country_database_urls" => {
            "CITA_COUNTRY_<CC>_DATABASE_URL=sqlite:PATH, postgres://… or mysql://…"
        }
        "lock_url" => "redis://HOST:PORT[/DB] or rediss://…",
        "database_max_connections" => "a whole number, 1 to 4294967295",
        "database_acquire_timeout_ms" => "a whole number of milliseconds",
        _ => "see docs/configuration.md for the known keys",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        for (k, v) in pairs {
            // Parsed as the environment provider parses a variable's value.
            let value: figment::value::Value = v.parse().expect("any text parses");
            f = f.merge((*k, value));
        }
        Config::extract(&f)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = with(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.countries, vec![CountryCode::PE, CountryCode::CL]);
        assert_eq!(c.sqlite_synchronous, SqliteSynchronous::Normal);
        assert_eq!(c.request_timeout_ms, 30_000);
        assert_eq!(c.header_read_timeout_ms, 30_000);
    }

    #[test]
    fn timeouts_are_whole_milliseconds_of_at_least_one() {
        assert_eq!(
            with(&[("request_timeout_ms", "250")])
                .unwrap()
                .request_timeout_ms,
            250
        );
        for key in ["request_timeout_ms", "header_read_timeout_ms"] {
            let e = with(&[(key, "0")]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("CITA_{}", key.to_ascii_uppercase()))
                    && e.contains("at least 1"),
                "{e}"
            );
            let e = with(&[(key, "soon")]).unwrap_err().to_string();
            assert!(e.contains("milliseconds"), "{e}");
        }
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let e = with(&[("listen", "nowhere")]).unwrap_err().to_string();
        assert!(
            e.contains("CITA_LISTEN") && e.contains("address:port"),
            "{e}"
        );
        let e = with(&[("log_format", "xml")]).unwrap_err().to_string();
        assert!(
            e.contains("CITA_LOG_FORMAT") && e.contains("json or pretty"),
            "{e}"
        );
        assert_eq!(
            with(&[("sqlite_synchronous", "full")])
                .unwrap()
                .sqlite_synchronous,
            SqliteSynchronous::Full
        );
        let e = with(&[("sqlite_synchronous", "off")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CITA_SQLITE_SYNCHRONOUS") && e.contains("full or normal"),
            "{e}"
        );
        let e = with(&[("database_url", "oracle://scott:tiger@db/x")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CITA_DATABASE_URL") && !e.contains("tiger"),
            "{e}"
        );
        let e = with(&[("lock_url", "memcached://h")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("CITA_LOCK_URL") && e.contains("redis://"), "{e}");
        let e = with(&[("country_database_urls.AR", "mysql://root@h/cita_ar")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CITA_COUNTRY_AR_DATABASE_URL") && e.contains("not a served country"),
            "{e}"
        );
        let c = with(&[
            ("country_database_urls.PE", "mysql://root@127.0.0.1/cita_pe"),
            ("database_url", "postgres://cita:s3cret@db:5432/cita"),
            ("database_max_connections", "4"),
        ])
        .unwrap();
        assert_eq!(
            c.country_database_urls["PE"].expose(),
            "mysql://root@127.0.0.1/cita_pe"
        );
        assert_eq!(c.pool().max_connections, 4);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("cita:***@db:5432"),
            "{shown}"
        );
        let e = with(&[("database_max_connections", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("CITA_DATABASE_MAX_CONNECTIONS"), "{e}");
        assert_eq!(country_url_env("CITA_COUNTRY_PE_DATABASE_URL"), Some("PE"));
        assert_eq!(country_url_env("CITA_COUNTRIES"), None);
        let e = with(&[("countries", "PE,zz")]).unwrap_err().to_string();
        assert!(e.contains("CITA_COUNTRIES"), "{e}");
        assert_eq!(
            with(&[("countries", "CL, PE")]).unwrap().countries,
            vec![CountryCode::CL, CountryCode::PE]
        );
    }
}
