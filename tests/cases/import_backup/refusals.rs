//! What is refused: archives that are not what they claim (cut, damaged, of no known
//! format, of another engine than the one named, SQL text nobody says the engine of)
//! fail the operation and leave no record and no object behind; requests that cannot
//! work are refused before anything starts, naming the field.

use tonic::Code;

use super::*;
use crate::support::files::files_under;
use crate::support::{
    HttpServer, RedisOptions, RedisServer, assert_code, assert_invalid, blocking, error_reason, unknown_id,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_that_are_not_what_they_claim_leave_no_backup_behind() {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::disk());
        source.load_every_type();
        source.call(&["SAVE"]);
        source
    });
    let rdb = std::fs::read(source.dir().join("dump.rdb")).unwrap();
    let gzipped =
        std::fs::read(blocking(|| compress(&source.dir().join("dump.rdb"), "gzip", ".gz"))).unwrap();
    let mut flipped = rdb.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5a;
    let http = HttpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let serve = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        http.put(name, &path);
        http.file_url(name)
    };
    let cases = [
        (serve("cut.rdb.gz", &gzipped[..gzipped.len() / 2]), pb::Engine::Unspecified, "SOURCE_CORRUPT"),
        (serve("cut.rdb", &rdb[..rdb.len() - 100]), pb::Engine::Unspecified, "SOURCE_CORRUPT"),
        (serve("flipped.rdb", &flipped), pb::Engine::Unspecified, "SOURCE_CORRUPT"),
        (
            serve("noise.bin", &[0x89, b'P', b'N', b'G', 0, 0, 0, 13, 1, 2, 3]),
            pb::Engine::Unspecified,
            "FORMAT_UNKNOWN",
        ),
        (serve("dump.rdb", &rdb), pb::Engine::Postgres, "FORMAT_UNKNOWN"),
        (serve("plain.sql", b"CREATE TABLE t (id int);\n"), pb::Engine::Unspecified, "FORMAT_UNKNOWN"),
        (serve("plain-for-redis.sql", b"CREATE TABLE t (id int);\n"), pb::Engine::Redis, "FORMAT_UNKNOWN"),
    ];
    let server = TestServer::start().await;
    for (url, engine, reason) in cases {
        let done =
            import_backup(&server, pb::ImportBackupRequest { engine: engine as i32, ..archive(&url) }).await;
        assert_eq!(failure_reason(&done), reason, "{url}: {done:?}");
        let backup_id = &done.meta().backup_id;
        let request = pb::GetBackupRequest { id: backup_id.clone() };
        assert_code(server.backups().get_backup(request).await, Code::NotFound);
        let left = files_under(&server.local_backups_dir());
        assert!(
            !left.iter().any(|path| path.to_string_lossy().contains(backup_id.as_str())),
            "{url}: {left:?}"
        );
    }
    assert!(all_backups(&server).await.is_empty(), "no record of any failed import");

    // The same bytes whole are imported, engine named or not.
    let done = import_backup(
        &server,
        pb::ImportBackupRequest { engine: pb::Engine::Redis as i32, ..archive(&http.file_url("dump.rdb")) },
    )
    .await;
    imported(&done);
    // Plain SQL text is taken once its engine is named.
    let plain = import_backup(
        &server,
        pb::ImportBackupRequest { engine: pb::Engine::Mysql as i32, ..archive(&http.file_url("plain.sql")) },
    )
    .await;
    let (_, backup) = imported(&plain);
    assert_eq!((backup.engine, backup.format.as_str()), (pb::Engine::Mysql as i32, "mysql_sql"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_work_start_nothing() {
    let server = TestServer::start().await;
    let redis = blocking(|| RedisServer::start(RedisOptions::disk()));
    let filed = server.register_redis("filed", &redis).await;
    let imports = || server.imports();

    let both =
        pb::ImportBackupRequest { connection_uri: redis.uri(), ..archive("https://example.com/a.rdb") };
    assert_invalid(imports().import_backup(both).await, "connection_uri");
    assert_invalid(imports().import_backup(pb::ImportBackupRequest::default()).await, "import_url");
    let no_compression =
        pb::ImportBackupRequest { compression: pb::Compression::None as i32, ..live(&redis.uri()) };
    assert_invalid(imports().import_backup(no_compression).await, "compression");
    let bad_name = pb::ImportBackupRequest { name: "no__way".into(), ..live(&redis.uri()) };
    assert_invalid(imports().import_backup(bad_name).await, "name");
    let other_engine = pb::ImportBackupRequest { engine: pb::Engine::Postgres as i32, ..live(&redis.uri()) };
    assert_invalid(imports().import_backup(other_engine).await, "connection_uri");
    let not_filed_engine = pb::ImportBackupRequest {
        engine: pb::Engine::Mysql as i32,
        database_id: filed.id.clone(),
        ..archive("https://example.com/a.sql")
    };
    assert_invalid(imports().import_backup(not_filed_engine).await, "engine");
    let no_database = live("postgres://user:secret@127.0.0.1:5432");
    assert_invalid(imports().import_backup(no_database).await, "connection_uri");
    let archive_of_all =
        pb::ImportBackupRequest { import_all_databases: true, ..archive("https://example.com/a.rdb") };
    assert_invalid(imports().import_backup(archive_of_all).await, "import_all_databases");
    let file_credentials = pb::ImportBackupRequest {
        credentials: [("password".to_owned(), "x".to_owned())].into(),
        ..archive("file:///tmp/a.rdb")
    };
    assert_invalid(imports().import_backup(file_credentials).await, "credentials");

    let unknown_destination = pb::ImportBackupRequest { destination_id: unknown_id(), ..live(&redis.uri()) };
    assert_code(imports().import_backup(unknown_destination).await, Code::NotFound);
    let unknown_database = pb::ImportBackupRequest { database_id: unknown_id(), ..live(&redis.uri()) };
    assert_code(imports().import_backup(unknown_database).await, Code::NotFound);
    let metadata = archive("http://169.254.169.254/latest/dump.rdb");
    let refused = assert_code(imports().import_backup(metadata).await, Code::PermissionDenied);
    assert_eq!(error_reason(&refused).as_deref(), Some("URL_NOT_ALLOWED"), "{refused:?}");
    let outside = archive("file:///etc/hostname");
    let refused = assert_code(imports().import_backup(outside).await, Code::PermissionDenied);
    assert_eq!(error_reason(&refused).as_deref(), Some("URL_NOT_ALLOWED"), "{refused:?}");

    assert!(server.all_operations("").await.is_empty(), "nothing was started");
    assert!(all_backups(&server).await.is_empty());
}
