//! `cita-http`: the booking API. With no configuration it runs everything
//! in-process on SQLite files under `./data`.

use std::process::ExitCode;

use cita_http::{Application, config::Config, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cita-http: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("cita-http: cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let addr = app.local_addr();
    println!("Cita listening on http://{addr}");
    println!("API docs (Swagger UI): http://{addr}/docs");
    if let Err(e) = app.run_until(cita_http::shutdown_signal()).await {
        eprintln!("cita-http: {e:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
