//! A Cellar killed (SIGKILL) while a target loads by replication from it leaves that
//! target a replica of a dead address with a one-time `masterauth`; the next start on the
//! same data directory gives it back from the journal: a master again, its own settings,
//! its old data (it never finished loading), and the record removed.

use std::path::{Path, PathBuf};

use super::replication_load::{OWN_MASTERAUTH, config, replication_info};
use crate::support::{
    OperationExt, PATIENCE, ProcessServer, RedisOptions, RedisServer, backup_of, blocking, pb, poll,
};

const TARGET_PASSWORD: &str = "crash-target-pw-5d1e";

/// The journal records under a data directory (hidden temp files aside).
fn journal_records(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(listing) = std::fs::read_dir(data_dir.join("journal")) else { return Vec::new() };
    listing
        .map(|entry| entry.expect("a journal entry").path())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

async fn operation(server: &ProcessServer, name: &str) -> pb::Operation {
    let request = pb::GetOperationRequest { name: name.to_owned() };
    server.operations().get_operation(request).await.expect("GetOperation").into_inner()
}

/// A READY backup of a source of 16,000 values of 4 KiB stored uncompressed: a 64 MiB
/// RDB, more than the loopback's socket buffers hold, so that a target loading it slowly
/// (`key-load-delay`, 16 s in all) has not received it whole when Cellar is killed.
async fn big_backup(server: &ProcessServer) -> (RedisServer, pb::Backup) {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_slow_dataset(16_000, 4096, 0);
        source
    });
    let database = server.register_redis("crash-source", &source.uri()).await;
    let created = server.backups().create_backup(backup_of(&database.id)).await.expect("CreateBackup");
    let done = server.wait_done(&created.into_inner().name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    (source, done.response_backup().expect("the backup").clone())
}

/// A password-protected target with data of its own, its own `masterauth`, and a slow
/// loader.
fn slow_target() -> RedisServer {
    let target = RedisServer::start(RedisOptions::disk().with_password(TARGET_PASSWORD));
    target.call(&["SET", "precious", "the target's own data"]);
    target.call(&["CONFIG", "SET", "masterauth", OWN_MASTERAUTH]);
    target.call(&["CONFIG", "SET", "key-load-delay", "1000"]);
    target
}

fn is_given_back(target: &RedisServer) -> bool {
    replication_info(target).contains("role:master")
        && config(target, "masterauth") == OWN_MASTERAUTH
        && config(target, "repl-diskless-load") == "disabled"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_left_a_replica_by_a_killed_cellar_is_given_back_at_the_next_start() {
    let data_dir = tempfile::Builder::new().prefix("cellar-crash-").tempdir().unwrap();
    let mut first = ProcessServer::start(data_dir.path()).await;
    let (source, backup) = big_backup(&first).await;
    let target = blocking(slow_target);
    let before = blocking(|| target.digest());
    let target_database = first.register_redis("crash-target", &target.uri()).await;

    let request = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: target_database.id.clone(),
        ..Default::default()
    };
    let started = first.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    poll("the target to load from cellar", PATIENCE, || async {
        blocking(|| replication_info(&target).contains("master_sync_in_progress:1")).then_some(())
    })
    .await;
    let records = journal_records(data_dir.path());
    assert_eq!(records.len(), 1, "one record while the target is borrowed: {records:?}");
    first.kill_hard();
    let first_logs = first.logs();
    drop(first);

    // Cellar is gone: the target still follows its dead address, with the one-time
    // masterauth, and the record is still there.
    let info = blocking(|| replication_info(&target));
    assert!(info.contains("role:slave"), "still a replica: {info}");
    let one_time = blocking(|| config(&target, "masterauth"));
    assert_ne!(one_time, OWN_MASTERAUTH, "the borrowed masterauth is in place");
    assert_eq!(blocking(|| config(&target, "repl-diskless-load")), "swapdb");
    let record = std::fs::read_to_string(&records[0]).expect("the record");
    for secret in [TARGET_PASSWORD, OWN_MASTERAUTH, one_time.as_str()] {
        assert!(!record.contains(secret), "the record holds no uri, password or one-time password: {record}");
    }
    assert!(record.contains(&target_database.id), "the record names the database: {record}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&records[0]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the record holds the original masterauth");
    }

    let second = ProcessServer::start(data_dir.path()).await;
    poll("the target to be given back", PATIENCE, || async {
        blocking(|| is_given_back(&target)).then_some(())
    })
    .await;
    poll("the record to be removed", PATIENCE, || async {
        journal_records(data_dir.path()).is_empty().then_some(())
    })
    .await;
    let after = blocking(|| target.digest());
    assert!(
        after == before || after == blocking(|| source.digest()),
        "the target holds its old data or the new, not a mix"
    );
    assert!(blocking(|| replication_info(&target)).contains("role:master"));

    let interrupted = operation(&second, &started.name).await;
    assert_eq!(interrupted.state(), pb::OperationState::Failed, "{interrupted:?}");
    assert_eq!(interrupted.error().expect("an error").reason, "INTERRUPTED", "{interrupted:?}");

    let second_logs = poll("the give-back to be logged", PATIENCE, || async {
        let logs = second.logs();
        logs.contains("gave back a target").then_some(logs)
    })
    .await;
    // Killed mid-transfer, the target keeps its old data (swapdb); had the whole file
    // reached it before the kill, it would have finished loading and kept the new.
    let kept = if after == before { "it keeps its old data" } else { "it keeps the new data" };
    assert!(second_logs.contains(kept), "the log says which data it kept ({kept}):\n{second_logs}");
    for logs in [&first_logs, &second_logs] {
        for secret in [TARGET_PASSWORD, OWN_MASTERAUTH, one_time.as_str()] {
            assert!(!logs.contains(secret), "a secret was logged:\n{logs}");
        }
    }
}
