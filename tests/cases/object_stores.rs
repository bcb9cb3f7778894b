//! Object stores over gRPC: a Redis backed up to S3 (moto, checking signatures) and to
//! Azure Blob (Azurite) restores with the same digest, its objects are where the backup
//! says and go with it; wrong credentials fail the backup with STORAGE_DENIED and show
//! no secret anywhere; the store dying mid-upload fails it. Imports from `s3://`,
//! `abs://` and `gs://` sources (the last with the key in the environment of a `cellar`
//! process) load the same data, and absent objects fail with SOURCE_NOT_FOUND.

use cellar::domain::{Destination, ResourceName};
use cellar::storage::Storage;

use tonic_types::StatusExt;

use crate::support::object_stores::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto};
use crate::support::{
    OperationExt, ProcessServer, RedisOptions, RedisServer, TestServer, assert_invalid, assert_no_secret,
    backup_of, backup_state, blocking, logs, pb,
};

/// Credentials or options, as written in a test.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// The same store, opened directly, to look at what the server stored.
fn storage_of(
    uri: &str,
    credentials: &[(&str, &str)],
    options: &[(&str, &str)],
) -> std::sync::Arc<dyn Storage> {
    let destination =
        Destination::unregistered(ResourceName::parse("inspect").unwrap(), uri, credentials, options);
    cellar::storage::open(&destination).expect("opening the store")
}

fn s3_options(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("endpoint", moto.endpoint()),
        ("allow_http", "true".to_owned()),
        ("path_style", "true".to_owned()),
        ("region", "us-east-1".to_owned()),
    ]
}

fn borrowed<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(key, value)| (*key, value.as_str())).collect()
}

/// Backs `source` up to `destination`, checks the stored objects, restores into a new
/// redis-server and compares digests; then deletes the backup and checks its objects
/// are gone. Returns the backup.
async fn back_up_restore_and_delete(
    server: &TestServer,
    source: &RedisServer,
    database: &pb::Database,
    destination: &pb::Destination,
    storage: &dyn Storage,
) -> pb::Backup {
    let request =
        pb::CreateBackupRequest { destination_id: destination.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert_eq!(backup_state(&backup), pb::BackupState::Ready);
    // The destination as shown (a key in the URI as `****@`), less its credentials.
    let base = destination.uri.replace("****@", "");
    assert!(backup.uri.starts_with(&base), "{} under {}", backup.uri, destination.uri);

    let meta = storage.stat(&backup.object_key).await.expect("stat").expect("the data object is stored");
    assert_eq!(meta.size as i64, backup.size_bytes, "{backup:?}");
    let parent = backup.object_key.rsplit_once('/').expect("a key with a directory").0;
    let stored = storage.list(parent).await.expect("list");
    assert_eq!(stored.len(), 2, "the data object and manifest.json: {stored:?}");
    assert!(stored.iter().any(|meta| meta.key.ends_with("manifest.json")), "{stored:?}");

    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let target_database = server.register_redis(&format!("{}-target", database.name), &target).await;
    let restore = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: target_database.id.clone(),
        ..Default::default()
    };
    let started = server.backups().restore_backup(restore).await.expect("RestoreBackup").into_inner();
    let restored = server.wait_done(&started.name).await;
    assert_eq!(restored.state(), pb::OperationState::Succeeded, "{restored:?}");
    assert_eq!(
        blocking(|| target.digest()),
        blocking(|| source.digest()),
        "the restore has the source's data"
    );

    let delete = pb::DeleteBackupRequest { id: backup.id.clone(), request_id: String::new() };
    let started = server.backups().delete_backup(delete).await.expect("DeleteBackup").into_inner();
    let deleted = server.wait_done(&started.name).await;
    assert_eq!(deleted.state(), pb::OperationState::Succeeded, "{deleted:?}");
    assert_eq!(
        storage.list(parent).await.expect("list"),
        Vec::new(),
        "deleting the backup removes its objects"
    );
    backup
}

/// Backs up with a destination whose credentials are wrong: FAILED with
/// STORAGE_DENIED, no READY backup, and `secret` nowhere.
async fn denied_backup(
    server: &TestServer,
    database: &pb::Database,
    destination: &pb::Destination,
    secret: &str,
) {
    assert_no_secret(secret, destination);
    let request =
        pb::CreateBackupRequest { destination_id: destination.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().expect("an error");
    assert_eq!(error.code, tonic::Code::PermissionDenied as i32, "{error:?}");
    assert_eq!(error.reason, "STORAGE_DENIED", "{error:?}");
    assert_no_secret(secret, &done);
    let backup = server.backup(&done.meta().backup_id).await;
    assert_eq!(backup_state(&backup), pb::BackupState::Failed, "{backup:?}");
    assert_no_secret(secret, &backup);
    assert_no_secret(secret, &server.all_operations("").await);
    logs::assert_not_logged(secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_backup_to_s3_restores_with_the_same_digest_and_wrong_keys_are_denied() {
    let moto = blocking(Moto::start);
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let database = server.register_redis("s3-source", &source).await;

    let uri = format!("s3://{}/cellar/backups", moto.bucket);
    let credentials = [
        ("access_key_id", moto.access_key_id.as_str()),
        ("secret_access_key", moto.secret_access_key.as_str()),
    ];
    let options = s3_options(&moto);
    let destination = server.create_destination("moto", &uri, &credentials, &borrowed(&options)).await;
    assert!(destination.credentials.is_empty(), "credentials are never returned");
    assert_no_secret(&moto.secret_access_key, &destination);
    let storage = storage_of(&uri, &credentials, &borrowed(&options));
    let backup =
        back_up_restore_and_delete(&server, &source, &database, &destination, storage.as_ref()).await;
    assert!(backup.uri.starts_with("s3://cellartest/cellar/backups/"), "{}", backup.uri);
    assert!(blocking(|| moto.multipart_uploads()).is_empty(), "no multipart upload is left");

    let wrong = "wrong-secret-for-cellar-41c9";
    let credentials = [("access_key_id", moto.access_key_id.as_str()), ("secret_access_key", wrong)];
    let denied = server.create_destination("moto-wrong", &uri, &credentials, &borrowed(&options)).await;
    denied_backup(&server, &database, &denied, wrong).await;
    assert!(blocking(|| moto.multipart_uploads()).is_empty(), "no multipart upload is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_backup_to_azure_restores_with_the_same_digest_and_a_wrong_key_is_denied() {
    let azurite = blocking(Azurite::start);
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let database = server.register_redis("azure-source", &source).await;

    // The Redis Cloud form: the account key, percent-encoded, in the URI.
    let encoded_key = percent_encoding::utf8_percent_encode(AZURITE_KEY, percent_encoding::NON_ALPHANUMERIC);
    let uri = format!("abs://{encoded_key}@{AZURITE_ACCOUNT}/{}/cellar", azurite.container);
    let endpoint = azurite.endpoint();
    let options = [("endpoint", endpoint.as_str()), ("allow_http", "true")];
    let destination = server.create_destination("azurite", &uri, &[], &options).await;
    assert_eq!(destination.uri, format!("abs://****@{AZURITE_ACCOUNT}/{}/cellar", azurite.container));
    let storage = storage_of(&uri, &[], &options);
    let backup =
        back_up_restore_and_delete(&server, &source, &database, &destination, storage.as_ref()).await;
    assert_eq!(
        backup.uri.split_once("/cellar/").map(|(base, _)| base),
        Some(format!("abs://{AZURITE_ACCOUNT}/{}", azurite.container).as_str()),
        "{}",
        backup.uri
    );
    assert_no_secret(AZURITE_KEY, &backup);

    // The az:// form with the key in credentials.
    let wrong = "d3Jvbmcta2V5LWZvci1jZWxsYXI=";
    let credentials = [("account_name", AZURITE_ACCOUNT), ("account_key", wrong)];
    let uri = format!("az://{}/cellar", azurite.container);
    let denied = server.create_destination("azurite-wrong", &uri, &credentials, &options).await;
    denied_backup(&server, &database, &denied, wrong).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_settings_are_checked_at_create_and_update_naming_the_field_and_no_secret() {
    let server = TestServer::start().await;
    let secret = "s3cr3t-in-a-bad-request";
    let cases: &[(&str, Pairs, Pairs, &str)] = &[
        ("s3://bucket/p", &[("secret_key", secret)], &[], "destination.credentials"),
        ("s3://bucket/p", &[("access_key_id", "AKID")], &[], "destination.credentials"),
        ("s3://bucket/p", &[], &[("endpont", "http://127.0.0.1:9000")], "destination.options"),
        ("s3://bucket/p", &[], &[("endpoint", "http://127.0.0.1:9000")], "destination.options"),
        ("gs://bucket/p", &[("service_account_key", secret)], &[], "destination.credentials"),
        ("abs://KEY@account", &[], &[], "destination.uri"),
        (
            "az://container/p",
            &[("account_key", secret), ("sas_token", secret)],
            &[],
            "destination.credentials",
        ),
    ];
    for (index, (uri, credentials, options, field)) in cases.iter().enumerate() {
        let destination = pb::Destination {
            name: format!("bad-{index}"),
            uri: (*uri).to_owned(),
            credentials: credentials
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            options: options.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect(),
            ..Default::default()
        };
        let request =
            pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() };
        let status = assert_invalid(server.destinations().create_destination(request).await, field);
        assert_no_secret(secret, &status);
        assert_no_secret(secret, &status.get_error_details_vec());
    }

    // An update is checked as a whole: options that do not fit the stored credentials.
    let created = server.create_destination("good", "s3://bucket/p", &[], &[("region", "eu-west-1")]).await;
    let change = pb::Destination {
        id: created.id.clone(),
        options: [("allow_http".to_owned(), "maybe".to_owned())].into(),
        ..Default::default()
    };
    let request = pb::UpdateDestinationRequest {
        destination: Some(change),
        update_mask: Some(prost_types::FieldMask { paths: vec!["options".into()] }),
    };
    assert_invalid(server.destinations().update_destination(request).await, "destination.options");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_stopped_mid_upload_fails_the_backup_and_nothing_is_ready() {
    let mut moto = blocking(Moto::start);
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    // About 48 MiB of uncompressed values at about 8 MB/s: several 16 MiB parts, the
    // first ones uploaded while the snapshot still streams.
    blocking(|| source.load_slow_dataset(6000, 8192, 1000));
    let server = TestServer::start().await;
    let database = server.register_redis("s3-stopped-source", &source).await;
    let uri = format!("s3://{}/stopped", moto.bucket);
    let credentials = [
        ("access_key_id", moto.access_key_id.as_str()),
        ("secret_access_key", moto.secret_access_key.as_str()),
    ];
    let options = s3_options(&moto);
    let destination =
        server.create_destination("moto-stopped", &uri, &credentials, &borrowed(&options)).await;

    let request = pb::CreateBackupRequest {
        destination_id: destination.id.clone(),
        compression: pb::Compression::None as i32,
        ..backup_of(&database.id)
    };
    let created = server.start_backup(request).await;
    let past_one_part = 20 * 1024 * 1024;
    server
        .wait_for(&created.name, "a part to be uploaded", |operation| operation.bytes_done() > past_one_part)
        .await;
    assert!(!blocking(|| moto.multipart_uploads()).is_empty(), "a multipart upload is under way");
    blocking(|| moto.kill());

    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().expect("an error");
    assert_eq!(error.reason, "STORAGE_FAILED", "{error:?}");
    assert_no_secret(&moto.secret_access_key, &done);
    let backup = server.backup(&done.meta().backup_id).await;
    assert_eq!(backup_state(&backup), pb::BackupState::Failed, "{backup:?}");
    assert!(backup.sha256.is_empty() && backup.size_bytes == 0, "{backup:?}");
}

/// ImportDatabase of one source URI; waits for the end.
async fn import(server: &TestServer, database_id: &str, uri: &str) -> pb::Operation {
    let request = pb::ImportDatabaseRequest {
        database_id: database_id.to_owned(),
        source_uris: vec![uri.to_owned()],
        ..Default::default()
    };
    let started = server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
    server.wait_done(&started.name).await
}

/// Writes the file at `path` to `key` in `storage`.
async fn upload(storage: &dyn Storage, key: &str, path: &std::path::Path) {
    let mut writer = storage.writer(key).await.expect("starting a write");
    writer.write(bytes::Bytes::from(std::fs::read(path).expect("reading the file"))).await.expect("writing");
    writer.commit().await.expect("committing");
}

/// Loads every type into `source` and saves it: returns its `dump.rdb`, with a gzip'd
/// copy beside it (`dump.rdb.gz`).
fn saved_rdb(source: &RedisServer) -> std::path::PathBuf {
    source.load_every_type();
    source.call(&["SAVE"]);
    let rdb = source.dir().join("dump.rdb");
    let status = std::process::Command::new("gzip").args(["-q", "-k", "-f"]).arg(&rdb).status();
    assert!(status.is_ok_and(|status| status.success()), "gzip is needed (scripts/test installs it)");
    rdb
}

fn encoded(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_from_s3_and_azure_sources_load_the_same_data_and_never_show_keys() {
    let moto = blocking(Moto::start);
    let azurite = blocking(Azurite::start);
    let source = blocking(|| RedisServer::start(RedisOptions::disk()));
    let rdb = blocking(|| saved_rdb(&source));
    let s3_credentials = [
        ("access_key_id", moto.access_key_id.as_str()),
        ("secret_access_key", moto.secret_access_key.as_str()),
    ];
    let s3_options = s3_options(&moto);
    let s3 = storage_of(&format!("s3://{}/imports", moto.bucket), &s3_credentials, &borrowed(&s3_options));
    upload(s3.as_ref(), "dump.rdb.gz", &rdb.with_extension("rdb.gz")).await;
    let azure_options = [("endpoint", azurite.endpoint()), ("allow_http", "true".to_owned())];
    let azure_credentials = [("account_name", AZURITE_ACCOUNT), ("account_key", AZURITE_KEY)];
    let azure = storage_of(
        &format!("az://{}/imports", azurite.container),
        &azure_credentials,
        &borrowed(&azure_options),
    );
    upload(azure.as_ref(), "dump.rdb", &rdb).await;

    let server = TestServer::start().await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let database = server.register_redis("import-target", &target).await;
    let expected = blocking(|| source.digest());

    let s3_query = format!("endpoint={}&allow_http=true&region=us-east-1", moto.endpoint());
    let s3_uri = |secret: &str, key: &str| {
        let user = format!("{}:{}", encoded(&moto.access_key_id), encoded(secret));
        format!("s3://{user}@{}/imports/{key}?{s3_query}", moto.bucket)
    };
    let azure_uri = |account_key: &str, key: &str| {
        let query = format!("endpoint={}&allow_http=true", encoded(&azurite.endpoint()));
        format!(
            "abs://{}@{AZURITE_ACCOUNT}/{}/imports/{key}?{query}",
            encoded(account_key),
            azurite.container
        )
    };

    for (uri, secret) in [
        (s3_uri(&moto.secret_access_key, "dump.rdb.gz"), moto.secret_access_key.as_str()),
        (azure_uri(AZURITE_KEY, "dump.rdb"), AZURITE_KEY),
    ] {
        blocking(|| target.call(&["FLUSHALL"]));
        let done = import(&server, &database.id, &uri).await;
        assert_eq!(done.state(), pb::OperationState::Succeeded, "{uri}: {done:?}");
        assert_eq!(blocking(|| target.digest()), expected, "{uri}: the target holds the source's data");
        assert_no_secret(secret, &done);
        assert_no_secret(&encoded(secret), &done);
    }

    // Absent objects and refused keys fail the import, showing no key.
    let wrong = "wrong-import-secret-77c1";
    let wrong_azure_key = "d3JvbmctaW1wb3J0LWtleQ==";
    let cases = [
        (s3_uri(&moto.secret_access_key, "absent.rdb"), "SOURCE_NOT_FOUND", moto.secret_access_key.as_str()),
        (azure_uri(AZURITE_KEY, "absent.rdb"), "SOURCE_NOT_FOUND", AZURITE_KEY),
        (s3_uri(wrong, "dump.rdb.gz"), "STORAGE_DENIED", wrong),
        (azure_uri(wrong_azure_key, "dump.rdb"), "STORAGE_DENIED", wrong_azure_key),
    ];
    for (uri, reason, secret) in cases {
        let done = import(&server, &database.id, &uri).await;
        assert_eq!(done.state(), pb::OperationState::Failed, "{uri}: {done:?}");
        assert_eq!(done.error().map(|error| error.reason.as_str()), Some(reason), "{uri}: {done:?}");
        assert_no_secret(secret, &done);
        assert_no_secret(&encoded(secret), &done);
    }
    assert_eq!(blocking(|| target.digest()), expected, "failed imports leave the target as it was");
    logs::assert_not_logged(wrong);
}

/// ImportDatabase of one source URI on a `cellar` process; waits for the end.
async fn import_on_process(server: &ProcessServer, database_id: &str, uri: &str) -> pb::Operation {
    let request = pb::ImportDatabaseRequest {
        database_id: database_id.to_owned(),
        source_uris: vec![uri.to_owned()],
        ..Default::default()
    };
    let started = server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
    server.wait_done(&started.name).await
}

/// `gs://` sources take their credentials from the server's environment alone, so this
/// runs the `cellar` binary with `GOOGLE_SERVICE_ACCOUNT_KEY` set. The key points
/// `object_store`'s GCS client at moto (GCS's XML API speaks S3's protocol, see the
/// README) and disables OAuth: reads then carry no `Authorization` header, which moto
/// takes for S3 requests from an anonymous user, so the object is made public-read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gs_import_with_the_server_environment_key_loads_the_data_and_never_shows_the_key() {
    let moto = blocking(Moto::start_unchecked);
    let source = blocking(|| RedisServer::start(RedisOptions::disk()));
    let rdb = blocking(|| saved_rdb(&source));
    let credentials = [
        ("access_key_id", moto.access_key_id.as_str()),
        ("secret_access_key", moto.secret_access_key.as_str()),
    ];
    let options = s3_options(&moto);
    let s3 = storage_of(&format!("s3://{}/imports", moto.bucket), &credentials, &borrowed(&options));
    upload(s3.as_ref(), "dump.rdb.gz", &rdb.with_extension("rdb.gz")).await;
    blocking(|| moto.make_public_read("imports/dump.rdb.gz"));

    let key_id = "gcs-key-id-for-cellar-9f3b27";
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": "cellar@example.iam.gserviceaccount.com",
        "private_key": "",
        "private_key_id": key_id,
        "gcs_base_url": moto.endpoint(),
        "disable_oauth": true,
    })
    .to_string();
    let data_dir = tempfile::Builder::new().prefix("cellar-gcs-import-").tempdir().unwrap();
    let server =
        ProcessServer::start_with_env(data_dir.path(), &[], &[("GOOGLE_SERVICE_ACCOUNT_KEY", &key)]).await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let database = server.register_redis("gcs-import-target", &target.uri()).await;
    let expected = blocking(|| source.digest());

    let uri = |name: &str| format!("gs://{}/imports/{name}?allow_http=true", moto.bucket);
    let done = import_on_process(&server, &database.id, &uri("dump.rdb.gz")).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}\n{}", server.logs());
    assert_eq!(blocking(|| target.digest()), expected, "the target holds the source's data");
    assert_no_secret(key_id, &done);

    let absent = import_on_process(&server, &database.id, &uri("absent.rdb")).await;
    assert_eq!(absent.state(), pb::OperationState::Failed, "{absent:?}");
    assert_eq!(absent.error().map(|error| error.reason.as_str()), Some("SOURCE_NOT_FOUND"), "{absent:?}");
    assert_no_secret(key_id, &absent);
    assert_eq!(blocking(|| target.digest()), expected, "a failed import leaves the target as it was");

    let logs = server.logs();
    assert!(logs.contains("cellar listening"), "{logs}");
    assert!(!logs.contains(key_id), "the service account key was logged:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_endpoint_is_held_to_the_url_policy() {
    let server = TestServer::start().await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let database = server.register_redis("endpoint-target", &target).await;
    for endpoint in ["http://169.254.169.254", "http://10.1.2.3:9000"] {
        let request = pb::ImportDatabaseRequest {
            database_id: database.id.clone(),
            source_uris: vec![format!("s3://bucket/dump.rdb?endpoint={endpoint}&allow_http=true")],
            ..Default::default()
        };
        let status = server.imports().import_database(request).await.expect_err(endpoint);
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{endpoint}: {status:?}");
        assert_eq!(crate::support::error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{status:?}");
    }
    let request = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: vec!["s3://bucket/?region=x".to_owned()],
        ..Default::default()
    };
    assert_invalid(server.imports().import_database(request).await, "source_uris[0]");
}
