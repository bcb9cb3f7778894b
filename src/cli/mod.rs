//! The command line: `cellar serve` runs the server; `cellar retention-plan` shows what
//! retention and expiry would delete now; `cellar hash-token` prints what an
//! `[[auth.tokens]]` entry stores. Client commands come later.

mod logging;
mod retention;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Backups, restores, imports and exports for self-run databases, over gRPC.
#[derive(Debug, Parser)]
#[command(name = "cellar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Show, without deleting anything, which backups each database's retention and
    /// expiry would delete now, and when its schedule runs next (reads the catalog).
    RetentionPlan(retention::RetentionPlanArgs),
    /// Print the SHA-256 of a token read from standard input, for `[[auth.tokens]]`
    /// `sha256` (or, with `--generate`, make a new token and print both).
    HashToken(token::HashTokenArgs),
}

/// Flags of `cellar serve`; each overrides the config file and `CELLAR_*` variables.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (`127.0.0.1:50051`; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory of the catalog and the `local` destination.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How many backups may run at once; more wait queued.
    #[arg(long, value_name = "N")]
    max_concurrent_backups: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. `info` or `cellar=debug,info`.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// How long shutdown waits for running operations, e.g. `30s` or `2m`.
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
    /// Where restores stage decompressed data (default: `<data dir>/spool`).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// A directory `file://` import sources may be under (repeat for several).
    #[arg(long = "file-root", value_name = "DIR")]
    file_roots: Vec<PathBuf>,
    /// A directory to find the PostgreSQL and MySQL tools in (`pg_dump`, `pg_restore`,
    /// `psql`, `mariadb-dump`, `mariadb`), instead of PATH and the usual places (repeat
    /// for several).
    #[arg(long = "tool-dir", value_name = "DIR")]
    tool_path: Vec<PathBuf>,
    /// How Redis targets are loaded: `auto` (by replication where the target takes it,
    /// else RESTORE commands), `restore` or `replication`.
    #[arg(long, value_name = "METHOD")]
    redis_load: Option<String>,
    /// Where the Prometheus endpoint (`GET /metrics`) listens, e.g. `127.0.0.1:9464`;
    /// none by default.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// A host http(s) import sources may reach even at an internal address (loopback,
    /// private, link-local), as `name`, `name:port`, `IP` or `IP:port` (repeat for several).
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Where the download listener serves ExportBackup's signed links for stores that
    /// cannot presign URLs (local, FTP, WebDAV); `127.0.0.1:50052` by default, empty for
    /// none.
    #[arg(long, value_name = "ADDR")]
    download_listen: Option<String>,
    /// The public base URL of those links, e.g. `https://backups.example.com` behind a
    /// proxy (default: `http://<download listen address>`).
    #[arg(long, value_name = "URL")]
    download_base_url: Option<String>,
    /// A file holding the links' signing key (at least 32 bytes; default: one generated
    /// at first start in `<data dir>/download.key`).
    #[arg(long, value_name = "FILE")]
    download_key_file: Option<PathBuf>,
    /// The TLS certificate chain (PEM) of every listener (gRPC, downloads, metrics);
    /// reloaded when it changes or on SIGHUP. Plain TCP when unset.
    #[arg(long, value_name = "FILE")]
    tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert-file`.
    #[arg(long, value_name = "FILE")]
    tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates: clients then authenticate
    /// with one (mTLS).
    #[arg(long, value_name = "FILE")]
    tls_client_ca_file: Option<PathBuf>,
    /// With `--tls-client-ca-file`: `required` (default) or `optional` client
    /// certificates.
    #[arg(long, value_name = "MODE")]
    tls_client_auth: Option<String>,
    /// A file holding the catalog key (64 hex digits) that seals the catalog's secrets
    /// (default: `CELLAR_CATALOG_KEY`, else `$XDG_CONFIG_HOME/cellar/catalog.key` or
    /// `~/.config/cellar/catalog.key`, generated at first start).
    #[arg(long, value_name = "FILE")]
    catalog_key_file: Option<PathBuf>,
    /// An age identity file (`age-keygen` output) that opens encrypted backups for
    /// restores (repeat for several).
    #[arg(long = "age-identity-file", value_name = "FILE")]
    age_identity_files: Vec<String>,
}

/// Parses the command line and runs the command; the exit code says how it went.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::RetentionPlan(args) => retention::run(args),
        Command::HashToken(args) => token::run(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let overrides = crate::config::Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        max_concurrent_backups: args.max_concurrent_backups,
        log_format: args.log_format,
        log_level: args.log_level,
        shutdown_timeout: args.shutdown_timeout,
        spool_dir: args.spool_dir,
        file_roots: (!args.file_roots.is_empty()).then_some(args.file_roots),
        tool_path: (!args.tool_path.is_empty()).then_some(args.tool_path),
        redis_load: args.redis_load,
        metrics_listen: args.metrics_listen,
        allow_hosts: (!args.allow_hosts.is_empty()).then_some(args.allow_hosts),
        download_listen: args.download_listen,
        download_base_url: args.download_base_url,
        download_key_file: args.download_key_file,
        tls_cert_file: args.tls_cert_file,
        tls_key_file: args.tls_key_file,
        tls_client_ca_file: args.tls_client_ca_file,
        tls_client_auth: args.tls_client_auth,
        catalog_key_file: args.catalog_key_file,
        catalog_key: None,
        age_identity_file: (!args.age_identity_files.is_empty()).then_some(args.age_identity_files),
        auth: None,
    };
    let config = match crate::config::load(args.config.as_deref(), std::env::vars(), overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("cellar: {error}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_config(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "cellar stopped");
            ExitCode::FAILURE
        }
    }
}

async fn serve_config(config: crate::config::Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", config.listen))?;
    let settings = crate::server::Settings {
        data_dir: config.data_dir.clone(),
        max_concurrent_backups: config.max_concurrent_backups as usize,
        shutdown_timeout: config.shutdown_timeout,
        spool_dir: config.spool_dir.clone(),
        file_roots: config.file_roots.clone(),
        engines: crate::engine::Settings {
            redis_load: config.redis_load,
            tool_path: if config.tool_path.is_empty() {
                crate::engine::tool::ToolPath::default()
            } else {
                crate::engine::tool::ToolPath::only(config.tool_path.clone())
            },
        },
        allow_hosts: config.allow_hosts.clone(),
        scheduler: crate::schedule::runner::Settings::default(),
        metrics_listen: config.metrics_listen,
        downloads: crate::server::DownloadSettings {
            listen: config.download_listen,
            base_url: config.download_base_url.clone(),
            key_file: config.download_key_file.clone(),
        },
        tls: config.tls().map_err(|problem| anyhow::anyhow!("invalid configuration: {problem}"))?,
        catalog_key: config.catalog_key.clone(),
        age_identity_files: config.age_identity_files.clone(),
        auth: config.auth.clone(),
    };
    crate::server::run(listener, settings, crate::server::shutdown_signal()).await
}
