//! ImportBackup end to end, against real servers and stores: `redis` (a live Redis and
//! RDB archives over HTTP, FTP and S3 become READY backups that restore with the
//! source's digest), `sql` (live PostgreSQL and MariaDB databases, pg_dump archives and
//! scripts, a mariadb-dump file: restored with the same content checksums) and
//! `refusals` (what is not what it claims leaves no backup behind; bad requests start
//! nothing). This module holds what they share.

mod redis;
mod refusals;
mod sql;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::files::compress;
use crate::support::{OperationExt, TestServer, backup_state, pb};

/// ImportBackup of `request`; waits for the end.
async fn import_backup(server: &TestServer, request: pb::ImportBackupRequest) -> pb::Operation {
    let started = server.imports().import_backup(request).await.expect("ImportBackup").into_inner();
    assert_eq!(started.meta().kind, pb::OperationKind::ImportBackup as i32);
    assert!(!started.meta().backup_id.is_empty(), "the backup id is known from the start: {started:?}");
    server.wait_done(&started.name).await
}

/// An import of the archive at `url`.
fn archive(url: &str) -> pb::ImportBackupRequest {
    pb::ImportBackupRequest { import_url: url.to_owned(), ..Default::default() }
}

/// An import of the live database at `uri`.
fn live(uri: &str) -> pb::ImportBackupRequest {
    pb::ImportBackupRequest { connection_uri: uri.to_owned(), ..Default::default() }
}

/// The result of a succeeded import and its backup, checked READY, IMPORTED and
/// recorded as the result says.
#[track_caller]
fn imported(done: &pb::Operation) -> (pb::ImportResult, pb::Backup) {
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let result = match &done.result {
        Some(pb::operation::Result::Response(pb::OperationResponse {
            result: Some(pb::operation_response::Result::ImportResult(result)),
        })) => result.clone(),
        other => panic!("expected an import result, got {other:?}"),
    };
    let backup = result.backup.clone().expect("the import result carries the backup");
    assert_eq!(backup_state(&backup), pb::BackupState::Ready, "{backup:?}");
    assert_eq!(backup.origin, pb::BackupOrigin::Imported as i32, "{backup:?}");
    assert_eq!(result.backup_id, backup.id);
    assert_eq!(done.meta().backup_id, backup.id);
    assert_eq!((result.engine, result.format.as_str()), (backup.engine, backup.format.as_str()));
    assert!(backup.size_bytes > 0 && backup.sha256.len() == 64, "{backup:?}");
    (result, backup)
}

/// Where a backup stored on the `local` destination keeps its data.
fn stored_object(server: &TestServer, backup: &pb::Backup) -> PathBuf {
    server.local_backups_dir().join(&backup.object_key)
}

/// Restores `backup` into `target_database_id` (its logical database
/// `target_database_name`, or the one its URI names); waits for the end, which must be
/// a success.
async fn restore(
    server: &TestServer,
    backup: &pb::Backup,
    target_database_id: &str,
    target_database_name: &str,
) -> pb::Operation {
    let done = server.restore_and_wait(backup, target_database_id, target_database_name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    done
}

/// Every backup in the catalog.
async fn all_backups(server: &TestServer) -> Vec<pb::Backup> {
    let request = pb::ListBackupsRequest { page_size: 1000, ..Default::default() };
    server.backups().list_backups(request).await.expect("ListBackups").into_inner().backups
}

/// The import's failure reason, checked FAILED.
#[track_caller]
fn failure_reason(done: &pb::Operation) -> String {
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    done.error().map(|error| error.reason.clone()).unwrap_or_default()
}
