//! Structured logs via tracing, on stdout: JSON lines, or text coloured
//! only when stdout is a terminal (never escape codes in a file or a pipe).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt as tsfmt;

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored, as in tests).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = match format {
        LogFormat::Json => fmt()
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .try_init(),
        LogFormat::Pretty => fmt()
            .with_ansi(std::io::stdout().is_terminal())
            .with_env_filter(filter)
            .try_init(),
    };
}

fn fmt() -> tsfmt::SubscriberBuilder {
    tracing_subscriber::fmt().with_target(false)
}
