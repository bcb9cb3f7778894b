//! Every user-given location, through every RPC that takes one (ImportDatabase,
//! ImportBackup, ExportDatabase, CreateDestination), is held to the same rules with no
//! allow-list: metadata endpoints, loopback (by address or by a name resolving to it),
//! private and link-local addresses, object-store endpoints among them, are refused with
//! PERMISSION_DENIED and reason URL_NOT_ALLOWED before anything starts; `file://` only
//! under the allowed roots, resolved (`..` and symbolic links cannot leave them).

use tonic::Code;

use crate::support::{
    HttpServer, ServerOptions, TestServer, assert_code, assert_no_secret, error_reason, pb, redis_database,
};

/// Asserts a refusal with reason URL_NOT_ALLOWED.
#[track_caller]
fn assert_not_allowed<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) {
    let status = assert_code(result, Code::PermissionDenied);
    assert_eq!(error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{what}: {status:?}");
    assert_no_secret("hunter2", &status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_locations_are_refused_by_every_rpc_that_takes_one() {
    let server =
        TestServer::start_with(ServerOptions { allow_hosts: Vec::new(), ..ServerOptions::default() }).await;
    let http = HttpServer::start().await;
    let database = server.register(redis_database("ssrf-target", "redis://127.0.0.1:1")).await;
    let root = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let outside = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(outside.path().join("secret.rdb"), b"REDIS0011").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.rdb"), root.path().join("link.rdb")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("away")).unwrap();

    let files = [
        "file:///etc/passwd".to_owned(),
        format!("file://{}/../../etc/passwd", root.path().display()),
        format!("file://{}/link.rdb", root.path().display()),
        format!("file://{}/away/secret.rdb", root.path().display()),
    ];
    let hosts = [
        "http://169.254.169.254/latest/meta-data/dump.rdb".to_owned(),
        "http://metadata.google.internal/computeMetadata/v1/dump.rdb".to_owned(),
        format!("http://u:hunter2@127.0.0.1:{}/files/dump.rdb", http.port()),
        format!("http://localhost:{}/files/dump.rdb", http.port()),
        "https://10.1.2.3/dumps/dump.rdb".to_owned(),
        "http://[fe80::1]/dump.rdb".to_owned(),
        "ftp://u:hunter2@192.168.7.7/dumps/dump.rdb".to_owned(),
        "s3://bucket/dumps/dump.rdb?endpoint=http://172.16.0.9:9000&allow_http=true".to_owned(),
    ];
    for uri in files.iter().chain(&hosts) {
        let request = pb::ImportDatabaseRequest {
            database_id: database.id.clone(),
            source_uris: vec![uri.clone()],
            ..Default::default()
        };
        assert_not_allowed(server.imports().import_database(request).await, &format!("ImportDatabase {uri}"));
        let request = pb::ImportBackupRequest { import_url: uri.clone(), ..Default::default() };
        assert_not_allowed(server.imports().import_backup(request).await, &format!("ImportBackup {uri}"));
    }
    for uri in files.iter().take(2).chain(&hosts) {
        let request = pb::ExportDatabaseRequest {
            database_id: database.id.clone(),
            export_uri: uri.clone(),
            ..Default::default()
        };
        assert_not_allowed(server.exports().export_database(request).await, &format!("ExportDatabase {uri}"));
    }
    for (index, uri) in hosts.iter().enumerate() {
        let directory = match uri.split_once('?') {
            Some((path, query)) => format!("{}?{query}", path.rsplit_once('/').unwrap().0),
            None => uri.rsplit_once('/').unwrap().0.to_owned(),
        };
        let destination =
            pb::Destination { name: format!("internal-{index}"), uri: directory, ..Default::default() };
        let request =
            pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() };
        assert_not_allowed(
            server.destinations().create_destination(request).await,
            &format!("destination {uri}"),
        );
    }
    assert!(server.all_operations("").await.is_empty(), "nothing was started");
}
