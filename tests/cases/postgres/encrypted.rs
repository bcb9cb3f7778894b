//! An encrypted PostgreSQL backup: `age -d | zstd -d | pg_restore` loads the stored
//! object by hand, and Cellar restores it (decrypting as it streams into pg_restore)
//! with the identity configured.

use age::secrecy::ExposeSecret as _;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_dump_loads_with_age_zstd_and_pg_restore_and_restores_through_cellar() {
    let keys = tempfile::tempdir().expect("temp dir");
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let identity_file = keys.path().join("key.txt");
    std::fs::write(&identity_file, format!("{}\n", identity.to_string().expose_secret()))
        .expect("write the key");
    let options =
        ServerOptions { age_identity_files: vec![identity_file.clone()], ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let source = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| source.checksums("shop"));
    let policy = pb::BackupPolicy { age_recipients: vec![recipient.clone()], ..Default::default() };
    let registered =
        pb::Database { backup_policy: Some(policy), ..postgres_database("pg-sealed", &source.url("shop")) };
    let database = server.register(registered).await;

    let backup = ready_backup(&server, &database.id).await;
    assert!(backup.encrypted && backup.age_recipients == [recipient], "{backup:?}");
    let object = files::path_of_uri(&backup.uri);
    assert!(std::fs::read(&object).expect("the object").starts_with(b"age-encryption.org/v1\n"));

    let pg_restore =
        tool("pg_restore", "pg_restore not found: run scripts/test (it installs postgresql-client)");
    blocking(|| source.create_database("shop_by_hand"));
    let script =
        "age -d -i \"$1\" \"$2\" | zstd -d -q | \"$3\" --no-owner --no-acl --exit-on-error -d \"$4\"";
    let status = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&identity_file)
        .arg(&object)
        .arg(&pg_restore)
        .arg(source.url("shop_by_hand"))
        .status()
        .expect("run age, zstd and pg_restore");
    assert!(status.success(), "age -d | zstd -d | pg_restore failed: {status}");
    assert_same(&blocking(|| source.checksums("shop_by_hand")), &original, "the dump loaded by hand");

    let restored = restore(&server, &backup, "", "shop_restored").await;
    assert_eq!(restore_result(&restored).database_name, "shop_restored");
    assert_same(&blocking(|| source.checksums("shop_restored")), &original, "the copy Cellar restored");
}
