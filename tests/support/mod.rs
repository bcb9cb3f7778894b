//! The harness: throwaway `redis-server`, PostgreSQL and MariaDB processes, the Cellar
//! server (in-process or as a child process), and helpers to follow operations, read
//! rich error details and look at what a backup stored.

// Each test module uses its own part of the harness.
#![allow(dead_code)]

pub(crate) mod auth;
pub(crate) mod files;
pub(crate) mod http;
pub(crate) mod logs;
pub(crate) mod object_stores;
pub(crate) mod pki;
pub(crate) mod process;
pub(crate) mod redis;
pub(crate) mod server;
pub(crate) mod sql_servers;
/// FTP and WebDAV servers; shared with the library's own backend tests.
#[path = "../../src/storage/test_servers.rs"]
pub(crate) mod storage_servers;
pub(crate) mod webhooks;

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

pub(crate) use cellar::grpc::pb::cellar::v1 as pb;
pub(crate) use http::HttpServer;
pub(crate) use process::ProcessServer;
pub(crate) use redis::{RedisOptions, RedisServer, Reply, free_port};
pub(crate) use server::{ServerOptions, TestServer};
use tonic::Code;
use tonic_types::StatusExt;

/// The longest any single wait in a test may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// The catalog key test servers use unless a test gives another (so that no test writes
/// a generated key into the user's configuration directory).
pub(crate) const TEST_CATALOG_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// How often pollers look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub(crate) async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`poll`] for synchronous checks (redis-server start-up, process exit).
pub(crate) fn poll_blocking<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Runs blocking work (redis commands, child processes) without stalling the runtime's
/// other tasks, among them the in-process server.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// A fresh idempotency key.
pub(crate) fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh, unknown resource id.
pub(crate) fn unknown_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A Redis database to register.
pub(crate) fn redis_database(name: &str, connection_uri: &str) -> pb::Database {
    pb::Database {
        name: name.to_owned(),
        engine: pb::Engine::Redis as i32,
        connection_uri: connection_uri.to_owned(),
        ..Default::default()
    }
}

/// A backup request for a database, everything else default.
pub(crate) fn backup_of(database_id: &str) -> pb::CreateBackupRequest {
    pb::CreateBackupRequest { database_id: database_id.to_owned(), ..Default::default() }
}

/// Readable access to the parts of an operation tests look at.
pub(crate) trait OperationExt {
    /// The metadata (always set by the server).
    fn meta(&self) -> &pb::OperationMetadata;
    /// The lifecycle state.
    fn state(&self) -> pb::OperationState;
    /// The error of a failed or cancelled operation.
    fn error(&self) -> Option<&pb::Status>;
    /// The backup in the response of a backup or delete operation.
    fn response_backup(&self) -> Option<&pb::Backup>;
    /// `progress.bytes_done`.
    fn bytes_done(&self) -> i64;
}

impl OperationExt for pb::Operation {
    fn meta(&self) -> &pb::OperationMetadata {
        self.metadata.as_ref().unwrap_or_else(|| panic!("operation without metadata: {self:?}"))
    }

    fn state(&self) -> pb::OperationState {
        pb::OperationState::try_from(self.meta().state)
            .unwrap_or_else(|_| panic!("unknown state in {self:?}"))
    }

    fn error(&self) -> Option<&pb::Status> {
        match &self.result {
            Some(pb::operation::Result::Error(error)) => Some(error),
            _ => None,
        }
    }

    fn response_backup(&self) -> Option<&pb::Backup> {
        match &self.result {
            Some(pb::operation::Result::Response(pb::OperationResponse {
                result: Some(pb::operation_response::Result::Backup(backup)),
            })) => Some(backup),
            _ => None,
        }
    }

    fn bytes_done(&self) -> i64 {
        self.meta().progress.as_ref().map_or(0, |progress| progress.bytes_done)
    }
}

/// The state of a backup.
pub(crate) fn backup_state(backup: &pb::Backup) -> pb::BackupState {
    pb::BackupState::try_from(backup.state).unwrap_or_else(|_| panic!("unknown state in {backup:?}"))
}

/// Asserts that an RPC failed with `code`; returns the status.
#[track_caller]
pub(crate) fn assert_code<T: Debug>(result: Result<T, tonic::Status>, code: Code) -> tonic::Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got a success: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            status
        }
    }
}

/// Asserts INVALID_ARGUMENT with a `google.rpc.BadRequest` violation naming `field`.
#[track_caller]
pub(crate) fn assert_invalid<T: Debug>(result: Result<T, tonic::Status>, field: &str) -> tonic::Status {
    let status = assert_code(result, Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert!(
        fields.iter().any(|violated| violated == field),
        "expected a violation of '{field}', got {fields:?} in {status:?}"
    );
    status
}

/// The fields named by the `BadRequest` detail of a status (empty when it has none).
pub(crate) fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let Some(bad_request) = details.bad_request() else { return Vec::new() };
    bad_request.field_violations.iter().map(|violation| violation.field.clone()).collect()
}

/// The `ErrorInfo.reason` of a status, if it has one.
pub(crate) fn error_reason(status: &tonic::Status) -> Option<String> {
    status.get_error_details().error_info().map(|info| info.reason.clone())
}

/// Asserts that `secret` appears nowhere in the debug form of `value`.
#[track_caller]
pub(crate) fn assert_no_secret(secret: &str, value: &impl Debug) {
    logs::remember_secret(secret);
    let shown = format!("{value:?}");
    assert!(!shown.contains(secret), "the secret leaked: {shown}");
}
