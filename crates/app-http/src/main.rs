//! `cita-http`: the booking API. With no configuration it runs everything
//! in-process on SQLite files under `./data`.

use std::path::PathBuf;
use std::process::ExitCode;

use cita_http::config::{Config, LogFormat};
use cita_http::{Application, telemetry};
use clap::Parser;

/// Cita's HTTP API. Every setting is a `CITA_*` environment variable or a
/// key of the configuration file (see docs/configuration.md).
#[derive(Debug, Parser)]
#[command(name = "cita-http", version)]
struct Cli {
    /// The configuration file (TOML), which must exist; without it,
    /// `cita.toml` in the working directory is read if present.
    #[arg(long, value_name = "PATH", env = "CITA_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load_from(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cita-http: {e}");
            return ExitCode::from(2);
        }
    };
    let json = config.log_format == LogFormat::Json;
    telemetry::init(config.log_format, &config.log);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("cita-http: cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let addr = app.local_addr();
    if json {
        // Every line of stdout is JSON in this format.
        tracing::info!(address = %addr, docs = %format!("http://{addr}/docs"), "Cita listening");
    } else {
        println!("Cita listening on http://{addr}");
        println!("API docs (Swagger UI): http://{addr}/docs");
    }
    if let Err(e) = app.run_until(cita_http::shutdown_signal()).await {
        eprintln!("cita-http: {e:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
