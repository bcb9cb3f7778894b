//! Backups to FTP and WebDAV destinations, against real servers (pyftpdlib and `rclone
//! serve webdav`) on loopback ports: a Redis backed up and restored with the same
//! digest; refused credentials fail the backup with STORAGE_DENIED and show the password
//! nowhere; a server stopped mid-upload fails the backup, which never becomes READY;
//! an RDB on an FTP server imports, and a missing one fails with SOURCE_NOT_FOUND.

use std::collections::HashMap;

use crate::support::storage_servers::StorageServer;
use crate::support::{
    OperationExt, RedisOptions, RedisServer, TestServer, assert_no_secret, backup_of, backup_state, blocking,
    pb,
};

const USER: &str = "cellar";

async fn create_destination(
    server: &TestServer,
    name: &str,
    uri: String,
    credentials: &[(&str, &str)],
) -> pb::Destination {
    let credentials: HashMap<String, String> =
        credentials.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    let destination = pb::Destination { name: name.to_owned(), uri, credentials, ..Default::default() };
    let request = pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() };
    server.destinations().create_destination(request).await.expect("CreateDestination").into_inner()
}

/// Backs up a Redis with every type to `destination`, restores it into another Redis
/// and compares digests; answers the backup.
async fn backs_up_and_restores(server: &TestServer, destination: &pb::Destination, name: &str) -> pb::Backup {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source
    });
    let database = server.register_redis(&format!("{name}-source"), &source).await;
    let request =
        pb::CreateBackupRequest { destination_id: destination.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert_eq!(backup_state(&backup), pb::BackupState::Ready);

    let target = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let target_database = server.register_redis(&format!("{name}-target"), &target).await;
    let request = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: target_database.id.clone(),
        ..Default::default()
    };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    let restored = server.wait_done(&started.name).await;
    assert_eq!(restored.state(), pb::OperationState::Succeeded, "{restored:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    backup
}

/// The files under `dir` that are not hidden temporaries (`.<name>.partial-<id>`).
fn objects(server: &StorageServer) -> Vec<String> {
    server
        .files()
        .into_iter()
        .filter(|path| !path.split('/').any(|part| part.contains(".partial-")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_backup_to_ftp_restores_with_the_same_digest() {
    let password = "ftp-pw-5c1d";
    let ftp = StorageServer::ftp(USER, password);
    let server = TestServer::start().await;
    let uri = format!("ftp://{USER}:{password}@127.0.0.1:{}/backups", ftp.port);
    let destination = create_destination(&server, "ftp", uri, &[]).await;
    assert_no_secret(password, &destination);
    assert!(destination.uri.contains("****"), "{}", destination.uri);

    let backup = backs_up_and_restores(&server, &destination, "ftp").await;
    let stored = objects(&ftp);
    assert_eq!(stored.len(), 2, "the data object and the manifest: {stored:?}");
    assert!(
        stored.iter().all(|path| path.starts_with("backups/") && path.contains(&backup.id)),
        "{stored:?}"
    );
    assert!(stored.iter().any(|path| path.ends_with("/manifest.json")), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_backup_to_webdav_restores_with_the_same_digest() {
    let password = "dav-pw-8e2a";
    let dav = StorageServer::webdav(Some((USER, password)));
    let server = TestServer::start().await;
    let uri = format!("http://127.0.0.1:{}/cellar/backups", dav.port);
    let destination =
        create_destination(&server, "dav", uri, &[("username", USER), ("password", password)]).await;
    assert_no_secret(password, &destination);

    let backup = backs_up_and_restores(&server, &destination, "dav").await;
    let stored = objects(&dav);
    assert_eq!(stored.len(), 2, "the data object and the manifest: {stored:?}");
    assert!(
        stored.iter().all(|path| path.starts_with("cellar/backups/") && path.contains(&backup.id)),
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ftp_password_fails_the_backup_with_storage_denied_and_never_shows_it() {
    let wrong = format!("wrong-pw-{}", uuid::Uuid::new_v4().simple());
    let ftp = StorageServer::ftp(USER, "right-pw-77");
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source
    });
    let server = TestServer::start().await;
    let uri = format!("ftp://{USER}:{wrong}@127.0.0.1:{}/backups", ftp.port);
    let destination = create_destination(&server, "ftp-denied", uri, &[]).await;
    let database = server.register_redis("ftp-denied-source", &source).await;
    let request =
        pb::CreateBackupRequest { destination_id: destination.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    let done = server.wait_done(&created.name).await;

    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().expect("a failed operation has an error");
    assert_eq!(error.reason, "STORAGE_DENIED", "{error:?}");
    let backup = server.backup(&done.meta().backup_id).await;
    assert_eq!(backup_state(&backup), pb::BackupState::Failed, "{backup:?}");
    let operations = server.all_operations("").await;
    let backups =
        server.backups().list_backups(pb::ListBackupsRequest::default()).await.unwrap().into_inner();
    let destinations = server
        .destinations()
        .list_destinations(pb::ListDestinationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_no_secret(&wrong, &done);
    assert_no_secret(&wrong, &operations);
    assert_no_secret(&wrong, &backups);
    assert_no_secret(&wrong, &destinations);
    assert!(ftp.files().is_empty(), "{:?}", ftp.files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ftp_server_stopped_mid_upload_fails_the_backup() {
    let mut ftp = StorageServer::ftp(USER, "pw-stop");
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        // Slow enough that the server stops while the upload runs.
        source.load_slow_dataset(3000, 4096, 1000);
        source
    });
    let server = TestServer::start().await;
    let uri = format!("ftp://{USER}:pw-stop@127.0.0.1:{}/backups", ftp.port);
    let destination = create_destination(&server, "ftp-stopped", uri, &[]).await;
    let database = server.register_redis("ftp-stopped-source", &source).await;
    let request =
        pb::CreateBackupRequest { destination_id: destination.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    server.wait_for_bytes(&created.name).await;
    ftp.stop();

    let backup_id = created.meta().backup_id.clone();
    crate::support::poll("the operation to end", crate::support::PATIENCE, || async {
        let backup = server.backup(&backup_id).await;
        assert_ne!(backup_state(&backup), pb::BackupState::Ready, "the backup became READY: {backup:?}");
        server.operation(&created.name).await.done.then_some(())
    })
    .await;
    let done = server.operation(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    assert_eq!(backup_state(&server.backup(&backup_id).await), pb::BackupState::Failed);
    assert!(objects(&ftp).is_empty(), "nothing visible: {:?}", ftp.files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rdb_on_ftp_is_imported_with_the_same_digest_and_a_missing_one_is_not_found() {
    let password = "import-pw-31";
    let ftp = StorageServer::ftp(USER, password);
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::disk());
        source.load_every_type();
        source.call(&["SAVE"]);
        source
    });
    std::fs::create_dir_all(ftp.dir.path().join("exports")).unwrap();
    std::fs::copy(source.dir().join("dump.rdb"), ftp.dir.path().join("exports/dump.rdb")).unwrap();
    let server = TestServer::start().await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "stale", "replaced"]));
    let database = server.register_redis("ftp-import-target", &target).await;

    let import = |path: &str| {
        let uri = format!("ftp://{USER}:{password}@127.0.0.1:{}/{path}", ftp.port);
        let request = pb::ImportDatabaseRequest {
            database_id: database.id.clone(),
            source_uris: vec![uri],
            ..Default::default()
        };
        async {
            let started =
                server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
            server.wait_done(&started.name).await
        }
    };
    let done = import("exports/dump.rdb").await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    assert_no_secret(password, &done);

    let missing = import("exports/absent.rdb").await;
    assert_eq!(missing.state(), pb::OperationState::Failed, "{missing:?}");
    assert_eq!(missing.error().expect("an error").reason, "SOURCE_NOT_FOUND", "{missing:?}");
    assert_no_secret(password, &missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_webdav_credentials_fail_the_backup_with_storage_denied_and_a_stopped_server_fails_it() {
    let wrong = format!("wrong-pw-{}", uuid::Uuid::new_v4().simple());
    let mut dav = StorageServer::webdav(Some((USER, "right-pw-42")));
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_slow_dataset(3000, 4096, 1000);
        source
    });
    let server = TestServer::start().await;
    let database = server.register_redis("dav-faults-source", &source).await;

    let uri = format!("http://{USER}:{wrong}@127.0.0.1:{}/backups", dav.port);
    let denied = create_destination(&server, "dav-denied", uri, &[]).await;
    let request = pb::CreateBackupRequest { destination_id: denied.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    assert_eq!(done.error().expect("an error").reason, "STORAGE_DENIED", "{done:?}");
    assert_no_secret(&wrong, &done);
    assert_no_secret(&wrong, &server.all_operations("").await);

    let uri = format!("http://127.0.0.1:{}/backups", dav.port);
    let credentials = [("username", USER), ("password", "right-pw-42")];
    let stopped = create_destination(&server, "dav-stopped", uri, &credentials).await;
    let request = pb::CreateBackupRequest { destination_id: stopped.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    server.wait_for_bytes(&created.name).await;
    dav.stop();
    let backup_id = created.meta().backup_id.clone();
    crate::support::poll("the operation to end", crate::support::PATIENCE, || async {
        let backup = server.backup(&backup_id).await;
        assert_ne!(backup_state(&backup), pb::BackupState::Ready, "the backup became READY: {backup:?}");
        server.operation(&created.name).await.done.then_some(())
    })
    .await;
    let done = server.operation(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    assert!(objects(&dav).is_empty(), "nothing visible: {:?}", dav.files());
}
