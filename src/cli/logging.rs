//! Structured logs with `tracing`: text for people, JSON for machines, on stderr.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
pub(crate) fn init(format: LogFormat, level: &str) {
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colours);
    match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_filter(filter(level)))
            .init(),
        LogFormat::Text => tracing_subscriber::registry().with(layer.with_filter(filter(level))).init(),
    }
}

/// `RUST_LOG`, else `level`, else `info`; and never suppaftp's debug and trace records,
/// which show every command it sends, `PASS <password>` included.
fn filter<S>(level: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let chosen = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    without_ftp_commands(chosen)
}

fn without_ftp_commands<S>(chosen: EnvFilter) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    chosen.and(filter_fn(|metadata| {
        !(metadata.target().starts_with("suppaftp") && *metadata.level() > tracing::Level::INFO)
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ftp_commands_are_never_logged_whatever_the_level() {
        let captured = Captured::default();
        let writer = captured.clone();
        let layer = tracing_subscriber::fmt::layer().with_writer(move || writer.clone()).with_ansi(false);
        let subscriber = tracing_subscriber::registry()
            .with(layer.with_filter(without_ftp_commands(EnvFilter::new("trace"))));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "suppaftp::async_ftp::tokio_ftp::control", "CC OUT: PASS hunter2");
            tracing::debug!(target: "suppaftp", "PASS hunter2");
            tracing::info!(target: "suppaftp", "connected");
            tracing::trace!(target: "cellar::storage", "kept");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("connected") && text.contains("kept"), "{text}");
    }
}
