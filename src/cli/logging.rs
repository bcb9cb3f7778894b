//! Structured logs with `tracing`: text for people, JSON for machines, on stderr.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
pub(crate) fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // suppaftp traces every command it sends, `PASS <password>` included: its debug and
    // trace records are dropped whatever the filter says.
    let filter = filter.and(filter_fn(|metadata| {
        !(metadata.target().starts_with("suppaftp") && *metadata.level() > tracing::Level::INFO)
    }));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colours);
    match format {
        LogFormat::Json => {
            tracing_subscriber::registry().with(layer.json().flatten_event(true).with_filter(filter)).init()
        }
        LogFormat::Text => tracing_subscriber::registry().with(layer.with_filter(filter)).init(),
    }
}
