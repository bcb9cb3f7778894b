//! Restores by replication against real redis-servers: the target's settings are put
//! back, a target that refuses the path is loaded with RESTORE commands instead (or the
//! restore fails when replication was required), and a cancelled or lost load leaves the
//! target as it was or fails with a clear reason.

use cellar::engine::redis::LoadMethod;

use crate::support::{
    OperationExt, PATIENCE, RedisOptions, RedisServer, ServerOptions, TestServer, assert_no_secret,
    backup_of, blocking, pb, poll,
};

/// A source with `keys` keys of `size`-byte values, and a READY backup of it.
async fn backed_up(server: &TestServer, name: &str, keys: u32, size: u32) -> (RedisServer, pb::Backup) {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source.call(&["DEBUG", "POPULATE", &keys.to_string(), "bulk", &size.to_string()]);
        source
    });
    let database = server.register_redis(name, &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&created.name).await;
    (source, done.response_backup().expect("the backup").clone())
}

fn restore_result(done: &pb::Operation) -> &pb::RestoreResult {
    match &done.result {
        Some(pb::operation::Result::Response(pb::OperationResponse {
            result: Some(pb::operation_response::Result::Restore(result)),
        })) => result,
        _ => panic!("a restore answers with a RestoreResult: {done:?}"),
    }
}

pub(super) fn config(redis: &RedisServer, name: &str) -> String {
    let mut client = redis.client();
    let reply = client.ok(&["CONFIG", "GET", name]);
    match reply {
        crate::support::Reply::Array(Some(pair)) if pair.len() == 2 => pair[1].text(),
        other => panic!("CONFIG GET {name} answered {other:?}"),
    }
}

pub(super) fn replication_info(redis: &RedisServer) -> String {
    redis.call(&["INFO", "replication"]).text()
}

pub(super) const OWN_MASTERAUTH: &str = "the-target's-own-masterauth";

/// A target holding data and a `masterauth` of its own.
fn prepared_target() -> RedisServer {
    let target = RedisServer::start(RedisOptions::disk());
    target.call(&["SET", "precious", "the target's own data"]);
    target.call(&["CONFIG", "SET", "masterauth", OWN_MASTERAUTH]);
    target
}

/// A target holding data whose user `loader` may not run REPLICAOF, registered as `name`.
async fn refusing_target(server: &TestServer, name: &str) -> (RedisServer, pb::Database) {
    let target = blocking(|| {
        let target = prepared_target();
        target.call(&[
            "ACL",
            "SETUSER",
            "loader",
            "on",
            ">loader-password",
            "~*",
            "&*",
            "+@all",
            "-replicaof",
        ]);
        target
    });
    let uri = format!("redis://loader:loader-password@127.0.0.1:{}", target.port());
    let database = server.register(crate::support::redis_database(name, &uri)).await;
    (target, database)
}

/// Whether the target is a master again with every borrowed setting back.
fn is_put_back(target: &RedisServer) -> bool {
    replication_info(target).contains("role:master")
        && config(target, "masterauth") == OWN_MASTERAUTH
        && config(target, "repl-diskless-load") == "disabled"
}

fn assert_put_back(target: &RedisServer) {
    assert!(replication_info(target).contains("role:master"), "a master again: {}", replication_info(target));
    assert_eq!(config(target, "masterauth"), OWN_MASTERAUTH, "masterauth is put back");
    assert_eq!(config(target, "repl-diskless-load"), "disabled", "repl-diskless-load is put back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_restore_puts_the_targets_settings_back() {
    let server = TestServer::start().await;
    let (source, backup) = backed_up(&server, "settings-source", 1000, 32).await;
    let target = blocking(prepared_target);
    let target_database = server.register_redis("settings-target", &target).await;

    let started = server.start_restore(&backup, &target_database.id).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(restore_result(&done).load_method, "replication");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    blocking(|| assert_put_back(&target));
    assert_no_secret(OWN_MASTERAUTH, &done);
    assert_journal_empty(&server);
}

/// No record of borrowed settings is left once a load ended.
fn assert_journal_empty(server: &TestServer) {
    let records = crate::support::files::files_under(&server.data_dir().join("journal"));
    assert!(records.is_empty(), "records left in the journal: {records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_refuses_replicaof_is_loaded_with_restore_commands_and_says_why() {
    let server = TestServer::start().await;
    let (source, backup) = backed_up(&server, "refusing-source", 1000, 32).await;
    let (target, target_database) = refusing_target(&server, "refusing-target").await;

    let started = server.start_restore(&backup, &target_database.id).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(restore_result(&done).load_method, "restore");
    let warnings = &done.meta().warnings;
    assert_eq!(warnings.len(), 1, "{done:?}");
    assert_eq!(warnings[0].reason, "REPLICATION_DECLINED");
    assert_eq!(warnings[0].code, 0);
    assert!(warnings[0].message.contains("REPLICAOF"), "the warning says why: {:?}", warnings[0]);
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    blocking(|| assert_put_back(&target));
    assert_no_secret("loader-password", &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_replication_fails_on_a_target_that_refuses_it_and_leaves_it_untouched() {
    let options = ServerOptions { redis_load: LoadMethod::Replication, ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let (_source, backup) = backed_up(&server, "required-source", 100, 16).await;
    let (target, target_database) = refusing_target(&server, "required-target").await;
    let before = blocking(|| target.digest());

    let started = server.start_restore(&backup, &target_database.id).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().expect("an error");
    assert_eq!(error.code, tonic::Code::FailedPrecondition as i32, "{error:?}");
    assert!(error.message.contains("cannot load by replication"), "{error:?}");
    assert_eq!(blocking(|| target.digest()), before, "the target is untouched");
    blocking(|| assert_put_back(&target));
    assert_journal_empty(&server);
}

/// Makes the target load slowly (`key-load-delay` microseconds per key), and starts a
/// restore of `backup` into it; returns once the target is loading.
async fn slow_restore(server: &TestServer, backup: &pb::Backup, target: &RedisServer) -> pb::Operation {
    blocking(|| target.call(&["CONFIG", "SET", "key-load-delay", "100"]));
    let target_database = server.register_redis("slow-target", target).await;
    let started = server.start_restore(backup, &target_database.id).await;
    poll("the target to start loading", PATIENCE, || async {
        blocking(|| replication_info(target).contains("master_sync_in_progress:1")).then_some(())
    })
    .await;
    started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_replication_restore_leaves_the_targets_data_and_settings() {
    let server = TestServer::start().await;
    let (_source, backup) = backed_up(&server, "cancel-source", 200_000, 16).await;
    let target = blocking(prepared_target);
    let before = blocking(|| target.digest());

    let started = slow_restore(&server, &backup, &target).await;
    assert_eq!(server.operation(&started.name).await.meta().phase, "replicating");
    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");

    // The target is put back from the background, one setting after another: wait for
    // all of them, then compare.
    poll("the target to be a master with its own settings again", PATIENCE, || async {
        blocking(|| is_put_back(&target)).then_some(())
    })
    .await;
    blocking(|| assert_put_back(&target));
    assert_eq!(blocking(|| target.digest()), before, "the old data was kept (swapdb)");
    poll("the record to be removed", PATIENCE, || async {
        crate::support::files::files_under(&server.data_dir().join("journal")).is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_lost_mid_replication_fails_the_restore_as_unreachable() {
    let server = TestServer::start().await;
    let (_source, backup) = backed_up(&server, "lost-source", 200_000, 16).await;
    let mut target = blocking(prepared_target);

    let started = slow_restore(&server, &backup, &target).await;
    blocking(|| target.kill());
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().expect("an error");
    assert_eq!(error.reason, "TARGET_UNREACHABLE", "{error:?}");
    assert!(error.message.contains("127.0.0.1"), "the message names the server: {error:?}");
}
