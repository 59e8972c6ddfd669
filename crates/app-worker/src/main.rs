//! `cita-worker`: the relay, country and confirmation loops and the
//! provisioning of seed 000's AWS topology. `cita-worker --help` lists
//! the subcommands and options.

use std::process::ExitCode;

use cita_worker::cli::Cli;
use cita_worker::{Shutdown, ops, run, shutdown_signal};
use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ops::init_logs(cli.options.log_format, &cli.options.log) {
        eprintln!("cita-worker: invalid configuration: {e:#}");
        return ExitCode::from(2);
    }
    let shutdown = Shutdown::on(shutdown_signal());
    let server = match cli.options.metrics_addr {
        None => None,
        Some(addr) => match ops::serve(addr, ops::install_metrics(), shutdown.clone()).await {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("cita-worker: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    let result = run(cli, shutdown).await;
    if let Some(server) = server {
        server.abort();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cita-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
