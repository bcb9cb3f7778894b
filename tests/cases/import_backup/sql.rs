//! PostgreSQL and MariaDB: live databases (one, or every one of a server), pg_dump
//! archives and scripts and a mariadb-dump file each become a READY IMPORTED backup
//! that restores with the source's content checksums; a cut pg_dump archive leaves no
//! backup behind.

use std::collections::BTreeMap;

use super::*;
use crate::support::files::{self, tool};
use crate::support::sql_servers::{MariaDbServer, PostgresServer};
use crate::support::{HttpServer, assert_no_secret, blocking};

/// A database of `engine` to register.
fn sql_database(name: &str, engine: pb::Engine, connection_uri: &str) -> pb::Database {
    pb::Database {
        name: name.to_owned(),
        engine: engine as i32,
        connection_uri: connection_uri.to_owned(),
        ..Default::default()
    }
}

#[track_caller]
fn assert_same(actual: &BTreeMap<String, String>, expected: &BTreeMap<String, String>, what: &str) {
    assert!(!expected.is_empty(), "{what}: no checksums at all");
    assert_eq!(actual, expected, "{what}");
}

/// `pg_dump ARGS URL` (the machine's own) into `output`.
fn pg_dump(url: &str, args: &[&str], output: &Path) -> PathBuf {
    let hint = "pg_dump not found: run scripts/test (it installs it) or apt-get install postgresql-client";
    let result = Command::new(tool("pg_dump", hint))
        .args(args)
        .arg(format!("--file={}", output.display()))
        .arg(url)
        .output()
        .unwrap_or_else(|error| panic!("cannot run pg_dump: {error}"));
    assert!(result.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&result.stderr));
    output.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_databases_archives_and_scripts_become_backups_that_restore() {
    let server = TestServer::start().await;
    let postgres = blocking(|| {
        let postgres = PostgresServer::start();
        for name in ["shop", "ledger"] {
            postgres.create_database(name);
            postgres.load_fixture(name);
        }
        postgres
    });
    let original = blocking(|| postgres.checksums("shop"));
    let target = server.register(sql_database("pg-target", pb::Engine::Postgres, &postgres.url(""))).await;

    // One live database.
    let done = import_backup(&server, live(&postgres.url("shop"))).await;
    let (result, backup) = imported(&done);
    assert_eq!((backup.engine, backup.format.as_str()), (pb::Engine::Postgres as i32, "pg_custom"));
    assert_eq!(
        (backup.database_name.as_str(), result.database_names.as_slice()),
        ("shop", &["shop".to_owned()][..])
    );
    assert_no_secret(postgres.password(), &done);
    restore(&server, &backup, &target.id, "from_live").await;
    assert_same(&blocking(|| postgres.checksums("from_live")), &original, "a live import");

    // Every database of the server, each its own part.
    let request = pb::ImportBackupRequest { import_all_databases: true, ..live(&postgres.url("postgres")) };
    let (result, backup) = imported(&import_backup(&server, request).await);
    let parts: Vec<&str> = backup.parts.iter().map(|part| part.database_name.as_str()).collect();
    assert!(parts.contains(&"shop") && parts.contains(&"ledger"), "{parts:?}");
    assert_eq!(result.database_names.len(), parts.len());
    // One part restores alone: a change made since is undone.
    let ledger = blocking(|| postgres.checksums("ledger"));
    blocking(|| postgres.psql("ledger", "CREATE TABLE added_since (id int)"));
    restore(&server, &backup, &target.id, "ledger").await;
    assert_same(&blocking(|| postgres.checksums("ledger")), &ledger, "one part of an every-database import");

    // A pg_dump custom-format archive, zstd, from a file under the allowed roots.
    let dir = tempfile::tempdir().unwrap();
    let custom =
        blocking(|| pg_dump(&postgres.url("shop"), &["--format=custom"], &dir.path().join("shop.pgdump")));
    let custom_zst = blocking(|| compress(&custom, "zstd", ".zst"));
    let url = url::Url::from_file_path(&custom_zst).unwrap().to_string();
    let (result, backup) = imported(&import_backup(&server, archive(&url)).await);
    assert_eq!(backup.format, "pg_custom");
    assert!(result.items_loaded >= 5, "tables counted: {result:?}");
    assert!(!backup.server_version.is_empty(), "the archive says its server: {backup:?}");
    restore(&server, &backup, &target.id, "from_archive").await;
    assert_same(&blocking(|| postgres.checksums("from_archive")), &original, "a pg_dump archive");

    // A plain pg_dump script over HTTP: its header says PostgreSQL.
    let plain = blocking(|| pg_dump(&postgres.url("shop"), &["--no-owner"], &dir.path().join("shop.sql")));
    let http = HttpServer::start().await;
    http.put("shop.sql", &plain);
    let (_, backup) = imported(&import_backup(&server, archive(&http.file_url("shop.sql"))).await);
    assert_eq!((backup.engine, backup.format.as_str()), (pb::Engine::Postgres as i32, "pg_sql"));
    restore(&server, &backup, &target.id, "from_script").await;
    assert_same(&blocking(|| postgres.checksums("from_script")), &original, "a pg_dump script");

    // An archive cut short is refused whole, and leaves nothing.
    let before = all_backups(&server).await.len();
    let bytes = std::fs::read(&custom).unwrap();
    let cut = dir.path().join("cut.pgdump");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let done = import_backup(&server, archive(url::Url::from_file_path(&cut).unwrap().as_str())).await;
    assert_eq!(failure_reason(&done), "SOURCE_CORRUPT", "{done:?}");
    assert_eq!(all_backups(&server).await.len(), before, "no backup record is left");
    assert!(
        server
            .backups()
            .get_backup(pb::GetBackupRequest { id: done.meta().backup_id.clone() })
            .await
            .is_err()
    );
    let failed_id = &done.meta().backup_id;
    let left = files::files_under(&server.local_backups_dir());
    assert!(!left.iter().any(|path| path.to_string_lossy().contains(failed_id.as_str())), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_live_databases_and_dump_files_become_backups_that_restore() {
    let server = TestServer::start().await;
    let mariadb = blocking(|| {
        let mariadb = MariaDbServer::start();
        mariadb.create_database("shop");
        mariadb.load_fixture("shop");
        mariadb
    });
    let original = blocking(|| mariadb.checksums("shop"));
    let target = server.register(sql_database("maria-target", pb::Engine::Mysql, &mariadb.url(""))).await;

    let done = import_backup(&server, live(&mariadb.url("shop"))).await;
    let (_, backup) = imported(&done);
    assert_eq!((backup.engine, backup.format.as_str()), (pb::Engine::Mysql as i32, "mysql_sql"));
    assert_no_secret(mariadb.password(), &done);
    restore(&server, &backup, &target.id, "from_live").await;
    assert_eq!(blocking(|| mariadb.checksums("from_live")), original, "a live import");

    // A mariadb-dump file (written by an export), gzip, over HTTP: its header says MySQL.
    let registered =
        server.register(sql_database("maria-shop", pb::Engine::Mysql, &mariadb.url("shop"))).await;
    let dir = tempfile::tempdir().unwrap();
    let export = pb::ExportDatabaseRequest {
        database_id: registered.id.clone(),
        export_uri: format!("{}/shop.sql.gz", files::uri_of_dir(dir.path()).trim_end_matches('/')),
        ..Default::default()
    };
    let started = server.exports().export_database(export).await.expect("ExportDatabase").into_inner();
    assert_eq!(server.wait_done(&started.name).await.state(), pb::OperationState::Succeeded);
    let http = HttpServer::start().await;
    http.put("shop.sql.gz", &dir.path().join("shop.sql.gz"));
    let (result, backup) = imported(&import_backup(&server, archive(&http.file_url("shop.sql.gz"))).await);
    assert_eq!((backup.engine, backup.format.as_str()), (pb::Engine::Mysql as i32, "mysql_sql"));
    assert_eq!(result.items_loaded, 4, "tables counted: {result:?}");
    restore(&server, &backup, &target.id, "from_file").await;
    assert_eq!(blocking(|| mariadb.checksums("from_file")), original, "a dump file");
}
