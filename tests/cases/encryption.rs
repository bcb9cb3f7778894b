//! Backups encrypted with age: the stored object is `age(zstd(rdb))` in the standard
//! format, which the `age` command decrypts with the private key; Cellar restores it
//! only with a matching identity configured, and refuses cleanly without one.

use std::process::Command;

use age::secrecy::ExposeSecret as _;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, ServerOptions, TestServer, assert_code, assert_invalid,
    backup_of, blocking, error_reason, files, pb, redis_database,
};

/// A database whose backups are encrypted to `recipients`.
fn encrypted_database(name: &str, uri: &str, recipients: &[&str]) -> pb::Database {
    let policy = pb::BackupPolicy {
        age_recipients: recipients.iter().map(|recipient| (*recipient).to_owned()).collect(),
        ..Default::default()
    };
    pb::Database { backup_policy: Some(policy), ..redis_database(name, uri) }
}

fn restore_request(backup: &pb::Backup, target: &pb::Database) -> pb::RestoreBackupRequest {
    pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: target.id.clone(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_backup_opens_with_the_age_command_and_restores_only_with_the_identity() {
    let keys = tempfile::tempdir().expect("temp dir");
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let identity_file = keys.path().join("key.txt");
    let secret = identity.to_string().expose_secret().to_owned();
    std::fs::write(&identity_file, format!("# public key: {recipient}\n{secret}\n"))
        .expect("write the identity");

    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source
    });
    let target = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let mut server = TestServer::start().await;

    let bad = encrypted_database("bad-recipient", &source.uri(), &[&recipient, "age1notakey"]);
    let request = pb::CreateDatabaseRequest { database: Some(bad), request_id: String::new() };
    assert_invalid(
        server.databases().create_database(request).await,
        "database.backup_policy.age_recipients[1]",
    );

    let database = server.register(encrypted_database("encrypted", &source.uri(), &[&recipient])).await;
    let policy = database.backup_policy.clone().expect("a policy");
    assert_eq!(policy.age_recipients, std::slice::from_ref(&recipient));
    let operation = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&operation.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert!(backup.encrypted, "{backup:?}");
    assert_eq!(backup.age_recipients, std::slice::from_ref(&recipient));

    // Stored: the age format, checksummed as stored; the manifest says for whom.
    let object = files::path_of_uri(&backup.uri);
    let stored = std::fs::read(&object).expect("read the stored object");
    assert!(stored.starts_with(b"age-encryption.org/v1\n"), "not an age file");
    assert_eq!(backup.sha256, files::sha256_hex(&object));
    assert_eq!(backup.size_bytes as usize, stored.len());
    let manifest_text =
        std::fs::read_to_string(object.with_file_name("manifest.json")).expect("the manifest");
    let manifest: serde_json::Value = serde_json::from_str(&manifest_text).expect("JSON");
    assert_eq!(manifest["encryption"]["format"], "age", "{manifest}");
    assert_eq!(manifest["encryption"]["recipients"][0], recipient.as_str(), "{manifest}");
    assert!(!manifest_text.contains("AGE-SECRET-KEY"), "{manifest_text}");

    // The age command decrypts it, zstd decompresses it, redis-server loads it.
    let rdb = keys.path().join("dump.rdb");
    let script = "age -d -i \"$1\" \"$2\" | zstd -d -q -o \"$3\"";
    let status = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&identity_file)
        .arg(&object)
        .arg(&rdb)
        .status()
        .expect("run age (scripts/test installs it: apt-get install age) and zstd");
    assert!(status.success(), "age -d | zstd -d failed: {status}");
    let loaded = blocking(|| RedisServer::from_rdb(&rdb));
    assert_eq!(blocking(|| loaded.digest()), blocking(|| source.digest()), "the decrypted data differs");

    // Without an identity: refused before anything runs, the target untouched.
    let target_database = server.register_redis("encrypted-target", &target).await;
    blocking(|| target.client().ok(&["SET", "kept", "1"]));
    let refused = server.backups().restore_backup(restore_request(&backup, &target_database)).await;
    let status = assert_code(refused, tonic::Code::FailedPrecondition);
    assert_eq!(error_reason(&status).as_deref(), Some("DECRYPTION_KEY_MISSING"), "{status:?}");
    assert_eq!(blocking(|| target.key_count()), 1, "the target was touched");

    // With the identity configured, it restores.
    let options = ServerOptions { age_identity_files: vec![identity_file], ..ServerOptions::default() };
    server.restart_with(options).await;
    let operation = server.backups().restore_backup(restore_request(&backup, &target_database)).await;
    let done = server.wait_done(&operation.expect("RestoreBackup").into_inner().name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()), "the restored data differs");

    // The encrypted object itself imports too, now that the identity opens it: into a
    // database, and into the catalog as a backup of its own (not filed under an
    // encrypted database, so stored in the clear).
    let object_uri = url::Url::from_file_path(&object).expect("an absolute path").to_string();
    blocking(|| target.client().ok(&["FLUSHALL"]));
    let request = pb::ImportDatabaseRequest {
        database_id: target_database.id.clone(),
        source_uris: vec![object_uri.clone()],
        ..Default::default()
    };
    let started = server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()), "the imported data differs");
    let request = pb::ImportBackupRequest { import_url: object_uri, ..Default::default() };
    let started = server.imports().import_backup(request).await.expect("ImportBackup").into_inner();
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let imported = server.backup(&started.meta().backup_id).await;
    assert!(!imported.encrypted && imported.format == "rdb", "{imported:?}");
}
