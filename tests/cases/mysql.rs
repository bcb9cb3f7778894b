//! The MySQL engine through the API, against real throwaway MariaDB servers: a backup
//! of the fixture database restores into a database of another name, and a live
//! database imports from another server, both with the same content checksums.

use crate::support::sql_servers::MariaDbServer;
use crate::support::{OperationExt, TestServer, backup_of, blocking, pb};

/// A server whose database `name` holds the fixture.
fn with_fixture(name: &str) -> MariaDbServer {
    let server = MariaDbServer::start();
    server.create_database(name);
    server.load_fixture(name);
    server
}

async fn register(server: &TestServer, name: &str, connection_uri: String) -> pb::Database {
    let database = pb::Database {
        name: name.to_owned(),
        engine: pb::Engine::Mysql as i32,
        connection_uri,
        ..Default::default()
    };
    server.register(database).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_backup_restores_into_a_database_of_another_name() {
    let server = TestServer::start().await;
    let mariadb = blocking(|| with_fixture("shop"));
    let database = register(&server, "mysql-shop", mariadb.url("shop")).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert_eq!(backup.database_name, "shop", "{backup:?}");

    let request = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_name: "copy".into(),
        ..Default::default()
    };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| mariadb.checksums("copy")), blocking(|| mariadb.checksums("shop")));
    let Some(pb::operation::Result::Response(pb::OperationResponse {
        result: Some(pb::operation_response::Result::Restore(result)),
    })) = &done.result
    else {
        panic!("a restore answers with a RestoreResult: {done:?}");
    };
    assert_eq!((result.items_loaded, result.load_method.as_str()), (4, "mysql"), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_mysql_database_imports_from_another_server() {
    let server = TestServer::start().await;
    let source = blocking(|| with_fixture("shop"));
    let target = blocking(|| {
        let target = MariaDbServer::start();
        target.create_database("shop");
        target.sql("shop", "CREATE TABLE stale (id INT); INSERT INTO stale VALUES (1);");
        target
    });
    let database = register(&server, "mysql-import-target", target.url("shop")).await;
    let request = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_connection_uri: source.url("shop"),
        ..Default::default()
    };
    let started = server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.checksums("shop")), blocking(|| source.checksums("shop")));
    let progress = done.meta().progress.clone().unwrap();
    assert_eq!(progress.items_done, 4, "{progress:?}");
    assert!(!format!("{done:?}").contains(source.password()), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_server_backup_restores_every_database() {
    let server = TestServer::start().await;
    let mariadb = blocking(|| {
        let mariadb = with_fixture("shop");
        mariadb.create_database("ledger");
        mariadb.sql("ledger", "CREATE TABLE entries (id INT PRIMARY KEY, amount DECIMAL(10, 2)); INSERT INTO entries VALUES (1, 9.99);");
        mariadb
    });
    let database = register(&server, "mysql-whole-server", mariadb.url("")).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    let expected = blocking(|| [mariadb.checksums("ledger"), mariadb.checksums("shop")]);

    blocking(|| {
        mariadb.drop_database("ledger");
        mariadb.sql("shop", "DELETE FROM notes");
    });
    let started = server.start_restore(&backup, "").await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| [mariadb.checksums("ledger"), mariadb.checksums("shop")]), expected);
    assert_eq!(blocking(|| mariadb.databases()), ["ledger", "shop"]);
}
