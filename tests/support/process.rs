//! `ProcessServer`: the real `cellar` binary as a child process (`cellar serve`), for
//! what only a process shows: SIGTERM handling, exit codes, `kill -9`, its logs, and
//! settings only its environment gives (such as cloud credentials).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use cellar::grpc::pb::cellar::v1::backup_service_client::BackupServiceClient;
use cellar::grpc::pb::cellar::v1::database_service_client::DatabaseServiceClient;
use cellar::grpc::pb::cellar::v1::import_service_client::ImportServiceClient;
use cellar::grpc::pb::cellar::v1::operation_service_client::OperationServiceClient;
use tonic::transport::{Channel, ClientTlsConfig};

use super::{PATIENCE, blocking, pb, poll_blocking};

/// A running `cellar serve` process; killed on drop if still running.
pub(crate) struct ProcessServer {
    child: Child,
    /// Where it listens (read from its `cellar listening` log line).
    pub(crate) addr: SocketAddr,
    data_dir: PathBuf,
    logs: Arc<Mutex<String>>,
    channel: Channel,
}

impl ProcessServer {
    /// Runs `cellar serve --listen 127.0.0.1:0 --data-dir DIR` and waits for the line
    /// that says where it listens.
    pub(crate) async fn start(data_dir: &Path) -> ProcessServer {
        ProcessServer::start_with(data_dir, &[]).await
    }

    /// Like [`ProcessServer::start`], with more flags for `cellar serve`.
    pub(crate) async fn start_with(data_dir: &Path, flags: &[&str]) -> ProcessServer {
        ProcessServer::start_with_env(data_dir, flags, &[]).await
    }

    /// Like [`ProcessServer::start_with`], with more environment variables: what only
    /// the server's environment can give, such as the credentials `object_store` reads
    /// (`GOOGLE_SERVICE_ACCOUNT_KEY`).
    pub(crate) async fn start_with_env(
        data_dir: &Path,
        flags: &[&str],
        envs: &[(&str, &str)],
    ) -> ProcessServer {
        ProcessServer::launch(data_dir, flags, envs, None).await
    }

    /// Like [`ProcessServer::start_with`] for a server speaking TLS (its flags name the
    /// certificate files); `tls` is how the test's client connects.
    pub(crate) async fn start_with_tls(
        data_dir: &Path,
        flags: &[&str],
        tls: ClientTlsConfig,
    ) -> ProcessServer {
        ProcessServer::launch(data_dir, flags, &[], Some(tls)).await
    }

    async fn launch(
        data_dir: &Path,
        flags: &[&str],
        envs: &[(&str, &str)],
        tls: Option<ClientTlsConfig>,
    ) -> ProcessServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cellar"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("CELLAR_CATALOG_KEY", super::TEST_CATALOG_KEY)
            .envs(envs.iter().copied())
            .env("CELLAR_LISTEN", "127.0.0.1:0")
            .env("CELLAR_DOWNLOAD_LISTEN", "127.0.0.1:0")
            .env("CELLAR_DATA_DIR", data_dir)
            .env("RUST_LOG", "info,cellar=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the cellar binary");
        let logs = Arc::new(Mutex::new(String::new()));
        let (address_sender, address_receiver) = mpsc::channel();
        collect_lines(child.stdout.take().expect("stdout"), logs.clone(), address_sender.clone());
        collect_lines(child.stderr.take().expect("stderr"), logs.clone(), address_sender);

        let addr = blocking(|| address_receiver.recv_timeout(PATIENCE)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "cellar did not log 'cellar listening address=...' in time; its output:\n{}",
                logs.lock().unwrap()
            )
        });
        let endpoint = match tls {
            Some(tls) => Channel::from_shared(format!("https://{addr}"))
                .expect("endpoint")
                .tls_config(tls)
                .expect("the client's TLS settings"),
            None => Channel::from_shared(format!("http://{addr}")).expect("endpoint"),
        };
        let channel = tokio::time::timeout(PATIENCE, endpoint.connect())
            .await
            .expect("cellar accepts a connection in time")
            .expect("connect to cellar");
        ProcessServer { child, addr, data_dir: data_dir.to_owned(), logs, channel }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data directory it was started on.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything it printed so far (stdout and stderr, ANSI colours removed).
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// A DatabaseService client.
    pub(crate) fn databases(&self) -> DatabaseServiceClient<Channel> {
        DatabaseServiceClient::new(self.channel.clone())
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

    /// Registers a Redis database at `uri`; panics if refused.
    pub(crate) async fn register_redis(&self, name: &str, uri: &str) -> pb::Database {
        let database = super::redis_database(name, uri);
        let request = pb::CreateDatabaseRequest { database: Some(database), request_id: String::new() };
        self.databases().create_database(request).await.expect("CreateDatabase").into_inner()
    }

    /// Waits (with WaitOperation, which answers within a capped timeout) until the
    /// operation is done, at most [`PATIENCE`].
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
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGHUP (`kill -HUP <pid>`): reload the TLS certificates.
    pub(crate) fn hang_up(&self) {
        let status = Command::new("kill").args(["-HUP", &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -HUP failed");
    }

    /// Sends SIGTERM (`kill -TERM <pid>`).
    pub(crate) fn terminate(&self) {
        let status =
            Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Kills it at once (SIGKILL), as a crash or an OOM kill would.
    pub(crate) fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        blocking(|| poll_blocking("cellar to exit", timeout, || child.try_wait().expect("try_wait")))
    }
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// Copies a child's output into `logs`, line by line, and sends the address of the first
// `cellar listening` line.
fn collect_lines(
    output: impl Read + Send + 'static,
    logs: Arc<Mutex<String>>,
    address: mpsc::Sender<SocketAddr>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            let line = strip_ansi(&line);
            if line.contains("cellar listening")
                && let Some(addr) = listening_address(&line)
            {
                let _ = address.send(addr);
            }
            super::logs::archive_process_output(&format!("{line}\n"));
            let mut logs = logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            logs.push_str(&line);
            logs.push('\n');
        }
    });
}

/// The address in a `cellar listening` line, text (`address=127.0.0.1:5000`) or JSON
/// (`"address":"127.0.0.1:5000"`).
fn listening_address(line: &str) -> Option<SocketAddr> {
    let start = line
        .find("address=")
        .map(|at| at + "address=".len())
        .or_else(|| line.find("\"address\":").map(|at| at + "\"address\":".len()))?;
    let value: String = line[start..]
        .trim_start_matches('"')
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',' && *c != '}')
        .collect();
    value.parse().ok()
}

fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences: ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
}

#[test]
fn listening_lines_are_parsed() {
    let text =
        "2026-01-01T00:00:00Z  INFO cellar::server: cellar listening address=127.0.0.1:5001 data_dir=/x";
    assert_eq!(listening_address(text), Some("127.0.0.1:5001".parse().unwrap()));
    let json = r#"{"fields":{"message":"cellar listening","address":"127.0.0.1:5002"}}"#;
    assert_eq!(listening_address(json), Some("127.0.0.1:5002".parse().unwrap()));
    assert_eq!(strip_ansi("\u{1b}[3maddress\u{1b}[0m\u{1b}[2m=\u{1b}[0m1"), "address=1");
}
