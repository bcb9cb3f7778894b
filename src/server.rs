//! `cellar serve`: opens the catalog, recovers interrupted operations, serves gRPC, and
//! shuts down gracefully (stop accepting, cancel running operations, exit within a
//! deadline).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::domain::EngineKind;
use crate::engine::journal::Journal;
use crate::metadata::{SqliteStore, Store};
use crate::net::{AllowedHost, UrlPolicy};
use crate::notify::{Notifier, RetryPolicy};
use crate::operations::Manager;
use crate::service::{Cellar, Places};
use crate::storage::http::HttpClient;
use crate::storage::local::LocalStorage;

/// How long webhook deliveries still pending at shutdown may take to finish before
/// they are dropped.
const NOTIFY_GRACE: Duration = Duration::from_secs(2);

/// What the server needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the catalog and the `local` destination live.
    pub data_dir: PathBuf,
    /// Snapshotting jobs allowed at once.
    pub max_concurrent_backups: usize,
    /// How long shutdown waits for running operations to clean up.
    pub shutdown_timeout: Duration,
    /// Where restores stage decompressed data; `None` means `<data_dir>/spool`.
    pub spool_dir: Option<PathBuf>,
    /// Directories `file://` import sources may be under.
    pub file_roots: Vec<PathBuf>,
    /// How engines load data.
    pub engines: crate::engine::Settings,
    /// Hosts http(s) import sources and webhooks may reach even at internal addresses.
    pub allow_hosts: Vec<AllowedHost>,
    /// How the scheduler paces itself.
    pub scheduler: crate::schedule::runner::Settings,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The download listener.
    pub downloads: DownloadSettings,
    /// TLS for every listener; `None`: plain TCP.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Where the catalog key comes from.
    pub catalog_key: crate::metadata::KeySource,
    /// age identity files that open encrypted backups.
    pub age_identity_files: Vec<PathBuf>,
    /// Who may call; nothing configured: open, on a loopback address only.
    pub auth: crate::auth::config::AuthConfig,
}

/// The download listener's settings.
#[derive(Debug, Clone, Default)]
pub struct DownloadSettings {
    /// Where it listens; `None`: no listener.
    pub listen: Option<std::net::SocketAddr>,
    /// The public base of its links; `None`: `http://<the bound address>`.
    pub base_url: Option<url::Url>,
    /// The signing key's file; `None`: `<data_dir>/download.key`, generated if absent.
    pub key_file: Option<PathBuf>,
}

/// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let authenticator = authenticator(&listener, &settings.auth)?;
    let data_dir = absolute(&settings.data_dir)?;
    let tls = match settings.tls.clone() {
        Some(tls) => Some(crate::tls::Tls::load(tls).context("cannot set up TLS")?),
        None => None,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let catalog_path = data_dir.join("catalog.sqlite");
    let (catalog_key, key_place) =
        crate::metadata::key::load(&settings.catalog_key, |name| std::env::var(name).ok())?;
    if Path::new(&key_place).starts_with(&data_dir) {
        tracing::warn!(path = %key_place, "the catalog key is in the data directory: a copy of the directory opens the catalog's secrets");
    }
    tracing::info!(key = %key_place, key_id = %catalog_key.id(), "catalog key");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&catalog_path, &catalog_key).await.with_context(|| {
            format!("cannot open catalog {} with the catalog key from {key_place}", catalog_path.display())
        })?);
    let manager = Manager::new(store.clone(), settings.max_concurrent_backups);
    let notifier = start_notifier(store.clone(), &settings.allow_hosts, manager.metrics())?;
    manager.notify_with(notifier.clone());
    let recovered = manager.recover().await.context("cannot recover interrupted operations")?;
    if recovered > 0 {
        tracing::warn!(recovered, "failed operations interrupted by the previous stop");
    }
    let journal = Journal::new(data_dir.join("journal"));
    give_back_borrowed(&journal, store.as_ref()).await;

    let backups_dir = data_dir.join("backups");
    let spool_dir = match &settings.spool_dir {
        Some(dir) => absolute(dir)?,
        None => data_dir.join("spool"),
    };
    sweep_spool(&spool_dir);
    let places = Places {
        backups_dir: backups_dir.clone(),
        spool_dir,
        file_roots: settings.file_roots.clone(),
        allow_hosts: settings.allow_hosts.clone(),
        journal,
    };
    let identities = crate::pipeline::identities::Identities::load(&settings.age_identity_files)?;
    if !identities.is_empty() {
        tracing::info!(recipients = ?identities.recipients(), "age identities for encrypted backups");
    }
    tokio::spawn(prepare_engines(settings.engines.clone()));
    let mut cellar = Cellar::new(store, manager.clone(), places)
        .context("cannot start the http client")?
        .with_engine_settings(settings.engines)
        .with_age_identities(identities);
    let downloads = match &settings.downloads.listen {
        Some(address) => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let (listener, links) =
                download_listener(*address, &settings.downloads, &data_dir, scheme).await?;
            cellar = cellar.with_download_links(links);
            Some(listener)
        }
        None => None,
    };
    let local = cellar.ensure_local_destination().await.context("cannot create the local destination")?;
    // This process is the only one using the local root, so every partial file is stale.
    if let Err(error) = LocalStorage::new(backups_dir).sweep_partials(Duration::ZERO).await {
        tracing::warn!(%error, "cannot remove partial objects left by an earlier stop");
    }
    tracing::debug!(destination = %local.id, "local destination ready");

    if let Err(error) = cellar.seed_backup_metrics().await {
        tracing::warn!(%error, "cannot read the last backups for the metrics");
    }
    let stop_scheduling = CancellationToken::new();
    if let Some(address) = settings.metrics_listen {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen for metrics on {address}"))?;
        tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
        let serving = crate::metrics::http::serve(
            listener,
            tls.as_ref().map(|tls| tls.speaking(crate::tls::Protocol::Http1)),
            manager.metrics(),
            manager.clone(),
            authenticator.clone(),
            stop_scheduling.clone(),
        );
        tokio::spawn(serving);
    }
    if let Some(listener) = downloads {
        let auth = authenticator.clone();
        let tls = tls.as_ref().map(|tls| tls.speaking(crate::tls::Protocol::Http1));
        tokio::spawn(crate::download::http::serve(
            listener,
            tls,
            cellar.clone(),
            auth,
            stop_scheduling.clone(),
        ));
    }
    let scheduler = tokio::spawn(crate::schedule::runner::run(
        cellar.clone(),
        settings.scheduler,
        stop_scheduling.clone(),
    ));
    let (routes, health) =
        crate::grpc::routes(cellar).await.context("cannot build the reflection service")?;
    let address = listener.local_addr()?;
    let stop_accepting = CancellationToken::new();
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(crate::grpc::KEEPALIVE_INTERVAL))
        .layer(crate::grpc::auth::AuthLayer::new(authenticator))
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            crate::tls::incoming(listener, tls.clone()),
            stop_accepting.clone().cancelled_owned(),
        );
    tokio::pin!(server);
    if let Some(tls) = &tls {
        tokio::spawn(tls.clone().watch(stop_scheduling.clone()));
    }
    let transport = match &tls {
        Some(tls) if tls.verifies_clients() => "tls+client-certificates",
        Some(_) => "tls",
        None => "plaintext",
    };
    tracing::info!(%address, transport, data_dir = %data_dir.display(), "cellar listening");

    tokio::select! {
        result = &mut server => return result.context("the gRPC server failed"),
        () = shutdown => {}
    }
    tracing::info!(timeout = ?settings.shutdown_timeout, "shutting down");
    health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    stop_accepting.cancel();
    stop_scheduling.cancel();
    let _ = scheduler.await;
    let drained = manager.shutdown(settings.shutdown_timeout).await;
    if !drained {
        tracing::warn!("some operations did not stop within the shutdown timeout");
    }
    notifier.shutdown(NOTIFY_GRACE).await;
    // Watch streams end once their operations are done; give open calls a moment.
    match tokio::time::timeout(Duration::from_secs(2), server).await {
        Ok(result) => result.context("the gRPC server failed while stopping")?,
        Err(_) => tracing::warn!("closing connections that were still open"),
    }
    tracing::info!("stopped");
    Ok(())
}

// The completion notifier, with an HTTP client of its own under the same URL policy as
// imports (so a slow webhook receiver never holds up an import's connections).
fn start_notifier(
    store: Arc<dyn Store>,
    allow_hosts: &[AllowedHost],
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<Notifier> {
    let client = HttpClient::new(UrlPolicy::new(allow_hosts.to_vec()))
        .context("cannot start the http client of webhooks")?;
    Ok(Notifier::start(store, client, metrics, RetryPolicy::default()))
}

// The authenticator the settings ask for; without one, only a loopback address may be
// served, and the log says that calls are not authenticated.
fn authenticator(
    listener: &TcpListener,
    auth: &crate::auth::config::AuthConfig,
) -> anyhow::Result<Option<Arc<crate::auth::Authenticator>>> {
    let address = listener.local_addr()?;
    if let Some(problem) = crate::auth::config::check_listen(address, auth) {
        anyhow::bail!("{problem}");
    }
    let authenticator =
        crate::auth::Authenticator::from_config(auth).context("cannot set up authentication")?;
    match &authenticator {
        Some(_) => tracing::info!(
            tokens = auth.tokens.len(),
            jwt = auth.jwt.is_some(),
            "authentication on: every call needs a bearer token"
        ),
        None => {
            tracing::warn!(%address, "authentication off: no [auth] tokens or JWT key configured, every caller on this loopback address is an admin")
        }
    }
    Ok(authenticator.map(Arc::new))
}

// Binds the download listener and makes its links: under the base URL, signed with the
// operator's key or the one generated in the data directory.
async fn download_listener(
    address: std::net::SocketAddr,
    settings: &DownloadSettings,
    data_dir: &std::path::Path,
    scheme: &str,
) -> anyhow::Result<(TcpListener, crate::download::Links)> {
    let key = match &settings.key_file {
        Some(file) => crate::download::key::read(file)?,
        None => crate::download::key::read_or_generate(data_dir)?,
    };
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for downloads on {address}"))?;
    let bound = listener.local_addr()?;
    let base_url = match &settings.base_url {
        Some(url) => url.clone(),
        None => {
            url::Url::parse(&format!("{scheme}://{bound}/")).context("the download listener's address")?
        }
    };
    tracing::info!(address = %bound, base_url = %base_url, "download links at /download/");
    Ok((listener, crate::download::Links::new(&key, base_url)))
}

// A load the previous stop interrupted may have left its target borrowed (a Redis still
// a replica of a listener that is gone, with a one-time masterauth): every record in the
// journal is given back in the background, so that an unreachable target does not hold up
// the start.
async fn give_back_borrowed(journal: &Journal, store: &dyn Store) {
    let entries = match journal.entries().await {
        Ok(entries) => entries,
        Err(error) => {
            tracing::error!(%error, "cannot read the journal of borrowed targets");
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                tracing::error!(%error, "a journal record of a borrowed target is kept unread");
                continue;
            }
        };
        match store.get_database(entry.database).await {
            Ok(database) => {
                tracing::info!(database = %entry.database, target = %database.connection_uri.redacted(), "giving back a target a load interrupted by the previous stop had borrowed");
                crate::engine::recover::spawn_give_back(entry, database.connection_uri);
            }
            Err(error) => tracing::error!(
                database = %entry.database,
                record = %entry.file_path().display(),
                %error,
                "a load interrupted by the previous stop borrowed a target the catalog cannot name; the record is kept"
            ),
        }
    }
}

// Spool files left by a stop in the middle of a restore are of no use any more.
fn sweep_spool(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("spool-")
            && let Err(error) = std::fs::remove_file(entry.path())
        {
            tracing::warn!(%error, file = %entry.path().display(), "cannot remove a stale spool file");
        }
    }
}

// Finds the SQL engines' tools (and `stdbuf`) in the background while the server
// starts, so that the first backup does not wait for `--version` answers, and says what
// was found (Redis runs no tool).
async fn prepare_engines(settings: crate::engine::Settings) {
    for kind in [EngineKind::Postgres, EngineKind::Mysql] {
        let Ok(engine) = crate::engine::for_kind(kind, &settings) else { continue };
        for tool in engine.prepare().await {
            tracing::debug!(engine = %kind, tool = %tool.path.display(), version = %tool.version, "tool found");
        }
    }
    if let Ok(Some(stdbuf)) = tokio::task::spawn_blocking(crate::engine::tool_buffer::stdbuf).await {
        tracing::debug!(stdbuf = %stdbuf.display(), "dump tools write through stdbuf");
    }
}

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
