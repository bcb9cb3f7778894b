//! Module values (RedisJSON, RedisBloom) against real redis-servers with and without the
//! modules: a target that loads them gets them, by replication or RESTORE; a target
//! without them is refused with MODULE_NOT_SUPPORTED naming the module type, untouched.

use cellar::engine::redis::LoadMethod;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, ServerOptions, TestServer, backup_of, blocking, pb,
};

const DOCUMENT: &str = r#"{"name":"cellar","tags":["backup","restore"],"size":3}"#;

/// A source with module values (a JSON document, a Bloom filter) and plain keys, and a
/// READY backup of it.
async fn backed_up_modules(server: &TestServer, name: &str) -> (RedisServer, pb::Backup) {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless().with_modules());
        source.load_every_type();
        source.call(&["JSON.SET", "doc", "$", DOCUMENT]);
        source.call(&["BF.ADD", "bloom", "present"]);
        source.call(&["EXPIRE", "bloom", "86400"]);
        source
    });
    let database = server.register_redis(name, &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    (source, done.response_backup().expect("the backup").clone())
}

fn assert_module_values(target: &RedisServer, source: &RedisServer) {
    assert_eq!(target.call(&["JSON.GET", "doc"]).text(), source.call(&["JSON.GET", "doc"]).text());
    assert_eq!(target.call(&["BF.EXISTS", "bloom", "present"]).text(), "1");
    assert_eq!(target.call(&["BF.EXISTS", "bloom", "absent"]).text(), "0");
    let ttl: i64 = target.call(&["TTL", "bloom"]).text().parse().expect("a TTL");
    assert!((86_398..=86_400).contains(&ttl), "the module value keeps its TTL: {ttl}");
    assert_eq!(target.key_count(), source.key_count());
    let probes = format!("{:?}", target.call(&["KEYS", "cellar:module-probe:*"]));
    assert_eq!(probes, "Array(Some([]))", "the probe keys are gone");
}

async fn restores_module_values(method: LoadMethod, expected_method: &str) {
    let server =
        TestServer::start_with(ServerOptions { redis_load: method, ..ServerOptions::default() }).await;
    let (source, backup) = backed_up_modules(&server, &format!("modules-source-{expected_method}")).await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk().with_modules()));
    let target_database = server.register_redis(&format!("modules-target-{expected_method}"), &target).await;

    let started = server.start_restore(&backup, &target_database.id).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let Some(pb::operation::Result::Response(pb::OperationResponse {
        result: Some(pb::operation_response::Result::Restore(result)),
    })) = &done.result
    else {
        panic!("a restore answers with a RestoreResult: {done:?}");
    };
    assert_eq!(result.load_method, expected_method);
    blocking(|| assert_module_values(&target, &source));
    if expected_method == "replication" {
        // The backup streamed to the target as it was read stops short of the module
        // values (the target might lack the modules): that first transfer is cut, and the
        // data goes again once checked whole and the modules probed.
        let log = target.log();
        assert!(log.contains("I/O error trying to sync with MASTER"), "the first transfer was cut:\n{log}");
        assert_eq!(log.matches("MASTER <-> REPLICA sync: Finished with success").count(), 1, "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_values_restore_by_replication_into_a_target_with_the_modules() {
    restores_module_values(LoadMethod::Auto, "replication").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_values_restore_with_restore_commands_into_a_target_with_the_modules() {
    restores_module_values(LoadMethod::Restore, "restore").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_the_modules_is_refused_naming_them_and_left_untouched() {
    let server = TestServer::start().await;
    let (_source, backup) = backed_up_modules(&server, "modules-source-plain").await;
    let target = blocking(|| {
        let target = RedisServer::start(RedisOptions::disk());
        target.call(&["SET", "precious", "must survive"]);
        target
    });
    let before = blocking(|| target.digest());
    let target_database = server.register_redis("plain-target", &target).await;

    let started = server.start_restore(&backup, &target_database.id).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().expect("an error");
    assert_eq!(error.reason, "MODULE_NOT_SUPPORTED", "{error:?}");
    assert_eq!(error.code, tonic::Code::FailedPrecondition as i32, "{error:?}");
    assert!(
        error.message.contains("MBbloom--") || error.message.contains("ReJSON-RL"),
        "the message names the module type: {error:?}"
    );
    assert_eq!(blocking(|| target.digest()), before, "the target is untouched");
}
