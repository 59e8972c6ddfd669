//! The command line: subcommands and options, each option also readable
//! from an environment variable (named in `--help`). A bad value exits
//! with code 2 and a message naming it (clap's behaviour).
//!
//! Variables shared with `cita-http` keep its names (`CITA_DATABASE_URL`,
//! `CITA_COUNTRIES`, `CITA_AWS_PREFIX`, …); the worker's own start with
//! `CITA_WORKER_`, which `cita-http` ignores, so both binaries can read one
//! environment.

use std::net::SocketAddr;
use std::time::Duration;

use cita_core::routing::CountryCode;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cita's queue workers (seed 000's distributed path).
#[derive(Debug, Parser)]
#[command(name = "cita-worker", version, about, long_about = None)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Options every command shares.
    #[command(flatten)]
    pub options: Options,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Publishes the primary store's outbox to the SNS topic.
    Relay,
    /// Consumes one country's queue: records each event in that country's
    /// own database and publishes its confirmation to EventBridge.
    Country {
        /// The country (ISO 3166-1 alpha-2), e.g. PE.
        #[arg(long, value_parser = parse_country)]
        country: CountryCode,
        /// That country's database (`mysql://…`, `postgres://…` or
        /// `sqlite:…`); by default the `CITA_COUNTRY_<CC>_DATABASE_URL`
        /// variable of that country.
        #[arg(long)]
        country_database_url: Option<String>,
    },
    /// Consumes the confirmations queue: applies each confirmation to the
    /// primary store (pending → confirmed when the versions match).
    Confirmations,
    /// Every loop in one process: the relay, one consumer per served
    /// country (each with its `CITA_COUNTRY_<CC>_DATABASE_URL`) and the
    /// confirmations consumer.
    All,
    /// Creates or verifies the topic, queues, dead-letter queues,
    /// subscriptions, EventBridge bus, rule and target, and (with a
    /// `dynamodb://` primary store) the DynamoDB tables. A second run
    /// reports each resource as already present and changes nothing.
    Provision,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Pretty,
}

/// Options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// The primary store (`postgres://…`, `mysql://…`, `sqlite:…` or
    /// `dynamodb://PREFIX`): read by `relay`, written by `confirmations`.
    #[arg(long, env = "CITA_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// The served countries, comma-separated.
    #[arg(long, env = "CITA_COUNTRIES", default_value = "PE,CL", value_delimiter = ',',
          value_parser = parse_country, global = true)]
    pub countries: Vec<CountryCode>,
    /// Prefix of the AWS resource names (topic `PREFIX-appointments`, …).
    #[arg(long, env = "CITA_AWS_PREFIX", default_value = "cita", global = true)]
    pub prefix: String,
    /// An endpoint replacing AWS's for every service (a local emulator
    /// such as moto); without it `AWS_ENDPOINT_URL` and the standard AWS
    /// configuration apply. Region and credentials always come from the
    /// standard sources (`AWS_REGION`, the default credentials chain).
    #[arg(long, env = "CITA_AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
    /// Serve `/health` and `/metrics` (Prometheus) on this address.
    #[arg(long, env = "CITA_WORKER_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,
    /// Queues' visibility timeout, in seconds: set on the queues by
    /// `provision`, and used by the consumers to keep slow messages
    /// invisible (they extend it every half of it).
    #[arg(long, env = "CITA_WORKER_VISIBILITY_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=43_200), global = true)]
    pub visibility_timeout_seconds: u64,
    /// Long-polling wait per receive, in seconds (0 to 20).
    #[arg(long, env = "CITA_WORKER_SQS_WAIT_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(0..=20), global = true)]
    pub wait_seconds: u64,
    /// After a failed message, make it visible again after this many
    /// seconds instead of the rest of its visibility timeout (the message
    /// goes to its dead-letter queue after 5 receives either way).
    #[arg(long, env = "CITA_WORKER_RETRY_DELAY_SECONDS", global = true)]
    pub retry_delay_seconds: Option<u64>,
    /// How often the idle relay looks at the outbox again, in milliseconds.
    #[arg(
        long,
        env = "CITA_WORKER_RELAY_IDLE_MS",
        default_value_t = 100,
        global = true
    )]
    pub relay_idle_ms: u64,
    /// Connections per database pool at most.
    #[arg(long, env = "CITA_DATABASE_MAX_CONNECTIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub database_max_connections: u32,
    /// Log format.
    #[arg(long, env = "CITA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber syntax).
    #[arg(long, env = "CITA_LOG", default_value = cita_adapters::DEFAULT_LOG, global = true)]
    pub log: String,
}

impl Options {
    /// The visibility timeout.
    pub fn visibility_timeout(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout_seconds)
    }
}

fn parse_country(s: &str) -> Result<CountryCode, String> {
    CountryCode::parse(s.trim())
        .map_err(|_| format!("{s:?} is not an ISO 3166-1 alpha-2 code in upper case (e.g. PE)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_values_are_refused() {
        let cli = Cli::try_parse_from([
            "cita-worker",
            "country",
            "--country",
            "PE",
            "--countries",
            "PE,CL",
            "--wait-seconds",
            "1",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Country { country, .. } if country == CountryCode::PE
        ));
        assert_eq!(
            cli.options.countries,
            vec![CountryCode::PE, CountryCode::CL]
        );
        assert_eq!(cli.options.wait_seconds, 1);
        for bad in [
            vec!["cita-worker", "country", "--country", "pe"],
            vec!["cita-worker", "relay", "--wait-seconds", "21"],
            vec!["cita-worker", "relay", "--visibility-timeout-seconds", "0"],
            vec!["cita-worker", "nothing"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
