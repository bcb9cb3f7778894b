//! TLS on every listener, with certificates made in the test: gRPC and download links
//! over TLS (a plaintext client gets nowhere), client certificates required by mTLS
//! (none, or one from another CA, is refused), and certificates replaced on disk taken
//! up without a restart (on a change of the files, or on SIGHUP to a running process)
//! while open connections go on; a client certificate subject as an identity with a role.

use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::support::files::sha256_hex;
use crate::support::pki::TestCa;
use crate::support::{
    OperationExt, PATIENCE, ProcessServer, RedisOptions, RedisServer, ServerOptions, TestServer, backup_of,
    blocking, logs, pb, poll,
};

/// TLS settings with the server certificate of `ca` written into `dir`.
fn server_tls(ca: &TestCa, dir: &Path) -> cellar::tls::TlsSettings {
    let (cert_file, key_file) = ca.server().write(dir, "server");
    cellar::tls::TlsSettings {
        cert_file,
        key_file,
        client_ca_file: None,
        client_auth: cellar::tls::ClientAuth::Required,
    }
}

/// A client that trusts `ca` and expects the server's name `localhost`.
fn trusting(ca: &TestCa) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem)).domain_name("localhost")
}

/// Connects to the server at `addr` with `tls`; the connection's error, if any.
async fn connect(server: &TestServer, tls: Option<ClientTlsConfig>) -> Result<Channel, String> {
    let endpoint = match tls {
        Some(tls) => {
            Channel::from_shared(format!("https://{}", server.addr)).unwrap().tls_config(tls).unwrap()
        }
        None => Channel::from_shared(format!("http://{}", server.addr)).unwrap(),
    };
    let channel = endpoint.connect().await.map_err(|error| format!("{error:?}"))?;
    // A refused client certificate may show only at the first request.
    let mut databases = pb::database_service_client::DatabaseServiceClient::new(channel.clone());
    databases
        .list_databases(pb::ListDatabasesRequest::default())
        .await
        .map_err(|status| format!("{status:?}"))?;
    Ok(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_download_links_speak_tls_and_plaintext_clients_get_nowhere() {
    let ca = TestCa::new("Cellar Test CA");
    let dir = tempfile::tempdir().unwrap();
    let settings = server_tls(&ca, dir.path());
    let options = ServerOptions { tls: Some((settings, trusting(&ca))), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;

    assert!(connect(&server, Some(trusting(&ca))).await.is_ok());
    assert!(connect(&server, None).await.is_err(), "a plaintext client is not served");
    let stranger = TestCa::new("Someone Else");
    assert!(
        connect(&server, Some(trusting(&stranger))).await.is_err(),
        "the server's certificate is checked"
    );

    // A backup's download link is https, and serves the stored bytes.
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::disk());
        source.call(&["SET", "greeting", "hello over tls"]);
        source
    });
    let database = server.register_redis("tls-source", &source).await;
    let started = server.start_backup(backup_of(&database.id)).await;
    let backup = server.wait_done(&started.name).await.response_backup().expect("a backup").clone();
    let request = pb::ExportBackupRequest { backup_id: backup.id.clone(), ..Default::default() };
    let link = server.exports().export_backup(request).await.expect("ExportBackup").into_inner().download_url;
    assert!(link.starts_with("https://127.0.0.1:"), "{link}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .resolve("localhost", link.trim_start_matches("https://").split('/').next().unwrap().parse().unwrap())
        .build()
        .unwrap();
    let url = link.replace("https://127.0.0.1", "https://localhost");
    let response = client.get(&url).send().await.expect("the link answers over TLS");
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let fetched = dir.path().join("fetched");
    std::fs::write(&fetched, &body).unwrap();
    assert_eq!(sha256_hex(&fetched), backup.sha256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_of_the_client_ca() {
    let ca = TestCa::new("Cellar Test CA");
    let clients = TestCa::new("Cellar Client CA");
    let dir = tempfile::tempdir().unwrap();
    let mut settings = server_tls(&ca, dir.path());
    settings.client_ca_file = Some(clients.write(dir.path(), "clients.crt"));
    let bot = clients.client("backup-bot");
    let with_identity = |issued: &crate::support::pki::Issued| {
        trusting(&ca).identity(Identity::from_pem(&issued.cert_pem, &issued.key_pem))
    };
    let options = ServerOptions { tls: Some((settings, with_identity(&bot))), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;

    assert!(connect(&server, Some(with_identity(&bot))).await.is_ok());
    assert!(connect(&server, Some(trusting(&ca))).await.is_err(), "a client without a certificate");
    let forged = TestCa::new("Cellar Client CA").client("backup-bot");
    assert!(connect(&server, Some(with_identity(&forged))).await.is_err(), "a certificate of another CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_replaced_on_disk_are_taken_up_without_a_restart() {
    let first = TestCa::new("First CA");
    let dir = tempfile::tempdir().unwrap();
    let settings = server_tls(&first, dir.path());
    let options = ServerOptions { tls: Some((settings, trusting(&first))), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let open = connect(&server, Some(trusting(&first))).await.expect("a first connection");

    // New files from another CA: new connections get the new certificate.
    let second = TestCa::new("Second CA");
    second.server().write(dir.path(), "server");
    poll("the new certificate", PATIENCE, || async {
        connect(&server, Some(trusting(&second))).await.ok().map(drop)
    })
    .await;
    assert!(connect(&server, Some(trusting(&first))).await.is_err(), "the old certificate is gone");
    // The connection opened before the change goes on.
    let mut databases = pb::database_service_client::DatabaseServiceClient::new(open);
    assert!(databases.list_databases(pb::ListDatabasesRequest::default()).await.is_ok());

    // Broken files are refused and the certificate in use stays.
    std::fs::write(dir.path().join("server.crt"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    poll("the refused reload", PATIENCE, || async {
        logs::captured().contains("cannot reload the TLS certificates").then_some(())
    })
    .await;
    assert!(connect(&server, Some(trusting(&second))).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificates_subject_is_its_identity_and_role() {
    use cellar::auth::Role;
    use cellar::auth::config::{AuthConfig, CertificateEntry};

    let ca = TestCa::new("Cellar Test CA");
    let clients = TestCa::new("Cellar Client CA");
    let dir = tempfile::tempdir().unwrap();
    let mut settings = server_tls(&ca, dir.path());
    settings.client_ca_file = Some(clients.write(dir.path(), "clients.crt"));
    let with_identity = |issued: &crate::support::pki::Issued| {
        trusting(&ca).identity(Identity::from_pem(&issued.cert_pem, &issued.key_pem))
    };
    let bot = clients.client("backup-bot");
    let auth = AuthConfig {
        certificates: vec![CertificateEntry {
            subject: "CN=backup-bot,O=Cellar Tests".to_owned(),
            role: Role::Viewer,
            scope: Default::default(),
        }],
        ..AuthConfig::default()
    };
    let options =
        ServerOptions { tls: Some((settings, with_identity(&bot))), auth, ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;

    // The mapped subject reads, as a viewer, and may not create.
    let channel = connect(&server, Some(with_identity(&bot))).await.expect("the viewer reads");
    let mut databases = pb::database_service_client::DatabaseServiceClient::new(channel);
    let request = pb::CreateDatabaseRequest {
        database: Some(crate::support::redis_database("by-cert", "redis://127.0.0.1:1")),
        request_id: String::new(),
    };
    let refused = databases.create_database(request).await.expect_err("a viewer may not create");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("databases.create"), "{refused:?}");
    assert!(
        logs::captured().contains("caller=\"cert:CN=backup-bot,O=Cellar Tests\""),
        "the audit names the subject"
    );

    // A certificate the CA signed for a subject not configured is no identity.
    let stranger = clients.client("someone-else");
    let error = connect(&server, Some(with_identity(&stranger))).await.expect_err("an unknown subject");
    assert!(error.contains("Unauthenticated"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificates_of_a_running_process() {
    let first = TestCa::new("First CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = first.server().write(dir.path(), "server");
    let flags =
        ["--tls-cert-file", cert_file.to_str().unwrap(), "--tls-key-file", key_file.to_str().unwrap()];
    let server = ProcessServer::start_with_tls(&dir.path().join("data"), &flags, trusting(&first)).await;
    let connect_to = |ca: &TestCa| {
        let endpoint = Channel::from_shared(format!("https://{}", server.addr)).unwrap();
        let endpoint = endpoint.tls_config(trusting(ca)).unwrap();
        async move { endpoint.connect().await.map(drop) }
    };
    assert!(connect_to(&first).await.is_ok());

    // New files from another CA, their modification times put back: only the signal
    // can tell the server that they changed.
    let times: Vec<std::time::SystemTime> = [&cert_file, &key_file]
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().modified().unwrap())
        .collect();
    let second = TestCa::new("Second CA");
    second.server().write(dir.path(), "server");
    for (path, time) in [&cert_file, &key_file].into_iter().zip(times) {
        std::fs::File::options().write(true).open(path).unwrap().set_modified(time).unwrap();
    }
    server.hang_up();
    poll("the reload on SIGHUP", PATIENCE, || async { connect_to(&second).await.ok() }).await;
    assert!(server.logs().contains("why=\"SIGHUP\""), "the reload came from the signal");
    assert!(connect_to(&first).await.is_err(), "the old certificate is gone");
}
