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

/// What a Cellar killed mid-load left behind.
struct Crashed {
    data_dir: tempfile::TempDir,
    source: RedisServer,
    target: RedisServer,
    /// The target's digest before the restore.
    before: String,
    /// The interrupted restore operation.
    operation: String,
    /// The one-time masterauth the target was left with.
    one_time: String,
    /// The killed Cellar's logs.
    logs: String,
}

/// Starts a Cellar, restores a big backup by replication into a slow target (registered
/// at `target_uri(port)`, its port given), and kills Cellar (SIGKILL) while the target
/// loads; checks that the target is left a replica with the borrowed masterauth, and the
/// record that says so.
async fn crash_mid_load(target_uri: impl Fn(&RedisServer) -> String) -> Crashed {
    let data_dir = tempfile::Builder::new().prefix("cellar-crash-").tempdir().unwrap();
    let mut first = ProcessServer::start(data_dir.path()).await;
    let (source, backup) = big_backup(&first).await;
    let target = blocking(slow_target);
    let before = blocking(|| target.digest());
    let target_database = first.register_redis("crash-target", &target_uri(&target)).await;

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
    let logs = first.logs();
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
    Crashed { data_dir, source, target, before, operation: started.name, one_time, logs }
}

/// After the restart: the target is given back (a master, its own settings), holds its
/// old data or the new whole, the record is gone, the operation INTERRUPTED, and the log
/// says which data the target kept, with no secret in any log.
async fn assert_given_back(crashed: &Crashed, second: &ProcessServer) {
    let target = &crashed.target;
    poll("the target to be given back", PATIENCE, || async {
        blocking(|| is_given_back(target)).then_some(())
    })
    .await;
    poll("the record to be removed", PATIENCE, || async {
        journal_records(crashed.data_dir.path()).is_empty().then_some(())
    })
    .await;
    let after = blocking(|| target.digest());
    assert!(
        after == crashed.before || after == blocking(|| crashed.source.digest()),
        "the target holds its old data or the new, not a mix"
    );

    let interrupted = operation(second, &crashed.operation).await;
    assert_eq!(interrupted.state(), pb::OperationState::Failed, "{interrupted:?}");
    assert_eq!(interrupted.error().expect("an error").reason, "INTERRUPTED", "{interrupted:?}");

    let logs = poll("the give-back to be logged", PATIENCE, || async {
        let logs = second.logs();
        logs.contains("gave back a target").then_some(logs)
    })
    .await;
    // Killed mid-transfer, the target keeps its old data (swapdb); had the whole file
    // reached it before the kill, it would have finished loading and kept the new.
    let kept = if after == crashed.before { "it keeps its old data" } else { "it keeps the new data" };
    assert!(logs.contains(kept), "the log says which data it kept ({kept}):\n{logs}");
    for logs in [&crashed.logs, &logs] {
        for secret in [TARGET_PASSWORD, OWN_MASTERAUTH, crashed.one_time.as_str()] {
            crate::support::logs::remember_secret(secret);
            assert!(!logs.contains(secret), "a secret was logged:\n{logs}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_left_a_replica_by_a_killed_cellar_is_given_back_at_the_next_start() {
    let crashed = crash_mid_load(RedisServer::uri).await;
    let second = ProcessServer::start(crashed.data_dir.path()).await;
    assert_given_back(&crashed, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_unreachable_at_the_start_is_given_back_once_it_answers() {
    // Cellar reaches the target through a forwarder, which is stopped across the restart.
    let port = crate::support::free_port();
    let forwarder = std::sync::Mutex::new(None);
    let crashed = crash_mid_load(|target| {
        *forwarder.lock().unwrap() = Some(Forwarder::start(port, target.port()));
        format!("redis://default:{TARGET_PASSWORD}@127.0.0.1:{port}")
    })
    .await;
    let forwarder = forwarder.into_inner().unwrap().expect("the forwarder");
    forwarder.stop();

    // The start is not held up by the target it cannot reach, and says so.
    let second = ProcessServer::start(crashed.data_dir.path()).await;
    poll("a retry to be logged", PATIENCE, || async {
        second.logs().contains("cannot yet give back a target").then_some(())
    })
    .await;
    assert!(blocking(|| replication_info(&crashed.target)).contains("role:slave"), "not given back yet");
    assert_eq!(journal_records(crashed.data_dir.path()).len(), 1, "the record is kept");

    let _forwarder = Forwarder::start(port, crashed.target.port());
    assert_given_back(&crashed, &second).await;
}

/// Forwards connections to 127.0.0.1:`port` to a redis on 127.0.0.1, on a thread of its
/// own; stopping it closes the port and every connection through it.
struct Forwarder {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Forwarder {
    fn start(port: u16, to: u16) -> Forwarder {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = crate::support::poll_blocking("the forwarder's port", PATIENCE, || {
            std::net::TcpListener::bind(("127.0.0.1", port)).ok()
        });
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let forwarding = async {
                    loop {
                        let Ok((mut inbound, _)) = listener.accept().await else { return };
                        tokio::spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                };
                tokio::select! {
                    () = forwarding => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection it forwards.
        });
        Forwarder { stop, thread }
    }

    /// Returns once the port and every connection through it are closed.
    fn stop(self) {
        let _ = self.stop.send(());
        blocking(|| self.thread.join().expect("the forwarder's thread"));
    }
}
