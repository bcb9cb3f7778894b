//! `TestServer`: Cellar served in-process on 127.0.0.1:0 over a temporary data directory,
//! with typed clients for the six services. Stops gracefully on drop; `restart` brings it
//! back on the same data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cellar::domain::Secret;
use cellar::engine::redis::LoadMethod;
use cellar::engine::tool::ToolPath;
use cellar::grpc::pb::cellar::v1::backup_service_client::BackupServiceClient;
use cellar::grpc::pb::cellar::v1::database_service_client::DatabaseServiceClient;
use cellar::grpc::pb::cellar::v1::destination_service_client::DestinationServiceClient;
use cellar::grpc::pb::cellar::v1::export_service_client::ExportServiceClient;
use cellar::grpc::pb::cellar::v1::import_service_client::ImportServiceClient;
use cellar::grpc::pb::cellar::v1::operation_service_client::OperationServiceClient;
use cellar::metadata::KeySource;
use cellar::net::AllowedHost;
use cellar::server::Settings;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, ClientTlsConfig};

use super::{OperationExt, PATIENCE, RedisServer, files, logs, pb, redis_database};

/// How the in-process server is configured.
#[derive(Debug, Clone)]
pub(crate) struct ServerOptions {
    /// `Settings::max_concurrent_backups`.
    pub(crate) max_concurrent_backups: usize,
    /// `Settings::shutdown_timeout`.
    pub(crate) shutdown_timeout: Duration,
    /// How Redis targets are loaded.
    pub(crate) redis_load: LoadMethod,
    /// Where the Prometheus endpoint listens, if anywhere.
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// `Settings::allow_hosts`: by default 127.0.0.1 (every port), where the harness's
    /// HTTP servers listen.
    pub(crate) allow_hosts: Vec<String>,
    /// `engine::Settings::tool_path`: the only directories where pg_dump, pg_restore,
    /// psql and the MariaDB tools are looked for; `None` for PATH and the usual places.
    pub(crate) tool_path: Option<Vec<PathBuf>>,
    /// Where the download listener listens: by default a free loopback port; `None`
    /// for no listener.
    pub(crate) download_listen: Option<SocketAddr>,
    /// TLS for the listeners, and how the test's client connects (it trusts the CA,
    /// and presents a certificate for mTLS); `None`: plain TCP.
    pub(crate) tls: Option<(cellar::tls::TlsSettings, ClientTlsConfig)>,
    /// Where the catalog key comes from: by default [`super::TEST_CATALOG_KEY`].
    pub(crate) catalog_key: KeySource,
    /// `Settings::age_identity_files`.
    pub(crate) age_identity_files: Vec<PathBuf>,
    /// `Settings::auth`: none configured by default (open, on loopback).
    pub(crate) auth: cellar::auth::config::AuthConfig,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_concurrent_backups: 4,
            shutdown_timeout: Duration::from_secs(15),
            redis_load: LoadMethod::Auto,
            metrics_listen: None,
            allow_hosts: vec!["127.0.0.1".to_owned()],
            tool_path: None,
            download_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            tls: None,
            catalog_key: KeySource::Value(Secret::new(super::TEST_CATALOG_KEY)),
            age_identity_files: Vec::new(),
            auth: cellar::auth::config::AuthConfig::default(),
        }
    }
}

/// A Cellar server running on the test's runtime.
pub(crate) struct TestServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    options: ServerOptions,
    data_dir: TempDir,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

struct Running {
    addr: SocketAddr,
    channel: Channel,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// A server with the default settings (4 concurrent backups).
    pub(crate) async fn start() -> TestServer {
        TestServer::start_with(ServerOptions::default()).await
    }

    /// A server with other settings.
    pub(crate) async fn start_with(options: ServerOptions) -> TestServer {
        logs::capture();
        let data_dir = tempfile::Builder::new().prefix("cellar-data-").tempdir().expect("temp dir");
        let running = launch(data_dir.path(), &options).await;
        TestServer {
            addr: running.addr,
            options,
            data_dir,
            channel: running.channel,
            shutdown: Some(running.shutdown),
            task: Some(running.task),
        }
    }

    /// Shuts down gracefully and waits for `server::run` to return, which must be `Ok`.
    pub(crate) async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let ended =
                tokio::time::timeout(PATIENCE, task).await.expect("the server stops within the deadline");
            ended.expect("the server task panicked").expect("server::run returned an error");
        }
    }

    /// Stops gracefully, then starts on the same data directory with `options`, which
    /// must fail: returns the error `server::run` gave (the server stays stopped).
    pub(crate) async fn restart_failing(&mut self, options: ServerOptions) -> String {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let settings = settings(self.data_dir.path(), &options);
        let ran =
            tokio::time::timeout(PATIENCE, cellar::server::run(listener, settings, std::future::pending()))
                .await
                .expect("the server gives up starting within the deadline");
        format!("{:#}", ran.expect_err("the server must refuse to start"))
    }

    /// Stops gracefully, then starts again on the same data directory with `options`.
    pub(crate) async fn restart_with(&mut self, options: ServerOptions) {
        self.options = options;
        self.restart().await;
    }

    /// Stops gracefully, then starts again on the same data directory (new port).
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let running = launch(self.data_dir.path(), &self.options).await;
        self.addr = running.addr;
        self.channel = running.channel;
        self.shutdown = Some(running.shutdown);
        self.task = Some(running.task);
    }

    /// The data directory (catalog and the `local` destination).
    pub(crate) fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Where the built-in `local` destination stores backups.
    pub(crate) fn local_backups_dir(&self) -> PathBuf {
        self.data_dir.path().join("backups")
    }

    /// The connection, for clients of other services (reflection, health).
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A DatabaseService client.
    pub(crate) fn databases(&self) -> DatabaseServiceClient<Channel> {
        DatabaseServiceClient::new(self.channel.clone())
    }

    /// A DestinationService client.
    pub(crate) fn destinations(&self) -> DestinationServiceClient<Channel> {
        DestinationServiceClient::new(self.channel.clone())
    }

    /// A BackupService client.
    pub(crate) fn backups(&self) -> BackupServiceClient<Channel> {
        BackupServiceClient::new(self.channel.clone())
    }

    /// An OperationService client.
    pub(crate) fn operations(&self) -> OperationServiceClient<Channel> {
        OperationServiceClient::new(self.channel.clone())
    }

    /// An ImportService client.
    pub(crate) fn imports(&self) -> ImportServiceClient<Channel> {
        ImportServiceClient::new(self.channel.clone())
    }

    /// An ExportService client.
    pub(crate) fn exports(&self) -> ExportServiceClient<Channel> {
        ExportServiceClient::new(self.channel.clone())
    }

    /// Registers a database; panics if refused.
    pub(crate) async fn register(&self, database: pb::Database) -> pb::Database {
        let request = pb::CreateDatabaseRequest { database: Some(database), request_id: String::new() };
        self.databases().create_database(request).await.expect("CreateDatabase").into_inner()
    }

    /// Registers a redis-server under `name`.
    pub(crate) async fn register_redis(&self, name: &str, redis: &RedisServer) -> pb::Database {
        self.register(redis_database(name, &redis.uri())).await
    }

    /// Creates a `file://` destination at `dir`.
    /// Creates a destination with these credentials and options; panics if refused.
    pub(crate) async fn create_destination(
        &self,
        name: &str,
        uri: &str,
        credentials: &[(&str, &str)],
        options: &[(&str, &str)],
    ) -> pb::Destination {
        let pairs = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
        };
        let destination = pb::Destination {
            name: name.to_owned(),
            uri: uri.to_owned(),
            credentials: pairs(credentials),
            options: pairs(options),
            ..Default::default()
        };
        let request =
            pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() };
        self.destinations().create_destination(request).await.expect("CreateDestination").into_inner()
    }

    pub(crate) async fn create_directory_destination(&self, name: &str, dir: &Path) -> pb::Destination {
        let destination =
            pb::Destination { name: name.to_owned(), uri: files::uri_of_dir(dir), ..Default::default() };
        let request =
            pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() };
        self.destinations().create_destination(request).await.expect("CreateDestination").into_inner()
    }

    /// Starts a backup; panics if the RPC is refused.
    pub(crate) async fn start_backup(&self, request: pb::CreateBackupRequest) -> pb::Operation {
        self.backups().create_backup(request).await.expect("CreateBackup").into_inner()
    }

    /// Starts restoring `backup` into the database `target_database_id` (empty: the
    /// backup's own); panics if the RPC is refused.
    pub(crate) async fn start_restore(&self, backup: &pb::Backup, target_database_id: &str) -> pb::Operation {
        let request = pb::RestoreBackupRequest {
            backup_id: backup.id.clone(),
            target_database_id: target_database_id.to_owned(),
            ..Default::default()
        };
        self.backups().restore_backup(request).await.expect("RestoreBackup").into_inner()
    }

    /// Restores `backup` into `target_database_id` (empty: the backup's database) and its
    /// logical database `target_database_name` (empty: the default); waits for the end.
    pub(crate) async fn restore_and_wait(
        &self,
        backup: &pb::Backup,
        target_database_id: &str,
        target_database_name: &str,
    ) -> pb::Operation {
        let request = pb::RestoreBackupRequest {
            backup_id: backup.id.clone(),
            target_database_id: target_database_id.to_owned(),
            target_database_name: target_database_name.to_owned(),
            ..Default::default()
        };
        let started = self.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
        self.wait_done(&started.name).await
    }

    /// GetOperation.
    pub(crate) async fn operation(&self, name: &str) -> pb::Operation {
        let request = pb::GetOperationRequest { name: name.to_owned() };
        self.operations().get_operation(request).await.expect("GetOperation").into_inner()
    }

    /// GetBackup.
    pub(crate) async fn backup(&self, id: &str) -> pb::Backup {
        let request = pb::GetBackupRequest { id: id.to_owned() };
        self.backups().get_backup(request).await.expect("GetBackup").into_inner()
    }

    /// Every operation (all pages).
    pub(crate) async fn all_operations(&self, filter: &str) -> Vec<pb::Operation> {
        let mut operations = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListOperationsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                filter: filter.to_owned(),
                order_by: String::new(),
            };
            let page = self.operations().list_operations(request).await.expect("ListOperations").into_inner();
            operations.extend(page.operations);
            if page.next_page_token.is_empty() {
                return operations;
            }
            page_token = page.next_page_token;
        }
    }

    /// Waits (with WaitOperation) until the operation is done.
    pub(crate) async fn wait_done(&self, name: &str) -> pb::Operation {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let request = pb::WaitOperationRequest {
                name: name.to_owned(),
                timeout: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
            };
            let operation =
                self.operations().wait_operation(request).await.expect("WaitOperation").into_inner();
            if operation.done {
                return operation;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "operation {name} not done after {PATIENCE:?}: {operation:?}"
            );
            // WaitOperation may return early (a server answering from its catalog): do not
            // hammer it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Collects the whole WatchOperation stream (it ends after the `done` message).
    pub(crate) async fn watch_all(&self, name: &str) -> Vec<pb::Operation> {
        let request = pb::WatchOperationRequest { name: name.to_owned() };
        let mut stream =
            self.operations().watch_operation(request).await.expect("WatchOperation").into_inner();
        let mut seen = Vec::new();
        let collected = tokio::time::timeout(PATIENCE, async {
            while let Some(operation) = stream.message().await.expect("the watch stream broke") {
                seen.push(operation);
            }
        })
        .await;
        assert!(
            collected.is_ok(),
            "the watch of {name} did not end within {PATIENCE:?}; last: {:?}",
            seen.last()
        );
        seen
    }

    /// Polls GetOperation until `condition` holds; fails if the operation ends first or
    /// nothing happens within [`PATIENCE`].
    pub(crate) async fn wait_for(
        &self,
        name: &str,
        what: &str,
        condition: impl Fn(&pb::Operation) -> bool,
    ) -> pb::Operation {
        self.wait_for_within(name, what, PATIENCE, condition).await
    }

    /// [`TestServer::wait_for`] with another deadline.
    pub(crate) async fn wait_for_within(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&pb::Operation) -> bool,
    ) -> pb::Operation {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let operation = self.operation(name).await;
            if condition(&operation) {
                return operation;
            }
            assert!(!operation.done, "operation ended before {what}: {operation:?}");
            assert!(tokio::time::Instant::now() < deadline, "no {what} after {timeout:?}: {operation:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a backup operation is RUNNING and has moved data.
    pub(crate) async fn wait_for_bytes(&self, name: &str) -> pb::Operation {
        self.wait_for(name, "bytes to flow", |operation| {
            operation.state() == pb::OperationState::Running && operation.bytes_done() > 0
        })
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Dropping the sender completes the shutdown future: the server stops gracefully
        // in the background (or with the test's runtime, whichever comes first).
        self.shutdown.take();
    }
}

async fn launch(data_dir: &Path, options: &ServerOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (shutdown, stop_requested) = oneshot::channel::<()>();
    let settings = settings(data_dir, options);
    let mut task = tokio::spawn(cellar::server::run(listener, settings, async move {
        let _ = stop_requested.await;
    }));
    let endpoint = match &options.tls {
        Some((_, client)) => Channel::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(client.clone())
            .expect("the client's TLS settings"),
        None => Channel::from_shared(format!("http://{addr}")).expect("endpoint"),
    };
    let channel = tokio::select! {
        connected = tokio::time::timeout(PATIENCE, endpoint.connect()) => {
            connected.expect("the server accepts a connection in time").expect("connect to the server")
        }
        ended = &mut task => panic!("the server stopped while starting: {ended:?}"),
    };
    Running { addr, channel, shutdown, task }
}

fn settings(data_dir: &Path, options: &ServerOptions) -> Settings {
    Settings {
        data_dir: data_dir.to_owned(),
        max_concurrent_backups: options.max_concurrent_backups,
        shutdown_timeout: options.shutdown_timeout,
        spool_dir: None,
        file_roots: vec![std::env::temp_dir()],
        engines: cellar::engine::Settings {
            redis_load: options.redis_load,
            tool_path: options.tool_path.clone().map(ToolPath::only).unwrap_or_default(),
        },
        allow_hosts: options
            .allow_hosts
            .iter()
            .map(|host| AllowedHost::parse(host).expect("a valid allowed host"))
            .collect(),
        scheduler: cellar::schedule::runner::Settings {
            sweep_every: Duration::from_millis(200),
            busy_retry: Duration::from_millis(200),
            max_sleep: Duration::from_secs(1),
        },
        metrics_listen: options.metrics_listen,
        downloads: cellar::server::DownloadSettings {
            listen: options.download_listen,
            base_url: None,
            key_file: None,
        },
        tls: options.tls.as_ref().map(|(settings, _)| settings.clone()),
        catalog_key: options.catalog_key.clone(),
        age_identity_files: options.age_identity_files.clone(),
        auth: options.auth.clone(),
    }
}
