//! Taking stored backups out: ExportBackup's URLs fetched with a real HTTP client and
//! DownloadBackup's stream, both compared with the catalog's SHA-256. A Redis backed up
//! to the local destination gets a link of Cellar's download listener (ranges, HEAD,
//! expired, tampered and foreign tokens, links that outlive a restart); a backup in S3
//! (moto) gets the store's presigned URL, one in Azure with a SAS token (which signs
//! nothing) a listener link again; requests that cannot be served are refused with
//! their stable reasons.

use sha2::Digest as _;
use tonic::Code;

use crate::support::object_stores::{AZURITE_ACCOUNT, Azurite, Moto};
use crate::support::{
    OperationExt, RedisOptions, RedisServer, ServerOptions, TestServer, assert_code, assert_invalid,
    backup_of, backup_state, blocking, error_reason, files, logs, pb, poll, unknown_id,
};

/// A Redis whose RDB is a few MiB, stored uncompressed: several 1 MiB chunks.
fn redis_with_megabytes() -> RedisServer {
    blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_slow_dataset(3000, 1000, 0);
        source.load_every_type();
        source
    })
}

/// Backs `database` up (to `destination_id`, empty for `local`) without compression;
/// answers the READY backup.
async fn ready_backup(server: &TestServer, database: &pb::Database, destination_id: &str) -> pb::Backup {
    let request = pb::CreateBackupRequest {
        destination_id: destination_id.to_owned(),
        compression: pb::Compression::None as i32,
        ..backup_of(&database.id)
    };
    let created = server.start_backup(request).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert_eq!(backup_state(&backup), pb::BackupState::Ready);
    backup
}

async fn export(server: &TestServer, backup_id: &str, ttl_seconds: i64) -> pb::ExportBackupResponse {
    let url_ttl = (ttl_seconds != 0).then_some(prost_types::Duration { seconds: ttl_seconds, nanos: 0 });
    let request =
        pb::ExportBackupRequest { backup_id: backup_id.to_owned(), url_ttl, database_name: String::new() };
    server.exports().export_backup(request).await.expect("ExportBackup").into_inner()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("an http client")
}

async fn get(url: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = http().get(url);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    request.send().await.expect("GET the download URL")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
}

/// The whole DownloadBackup stream from `offset`, checked message by message.
async fn download(server: &TestServer, backup: &pb::Backup, offset: i64) -> Vec<u8> {
    let request =
        pb::DownloadBackupRequest { backup_id: backup.id.clone(), offset, database_name: String::new() };
    let mut stream = server.exports().download_backup(request).await.expect("DownloadBackup").into_inner();
    let (mut data, mut expected_offset, mut first) = (Vec::new(), offset, true);
    while let Some(message) = stream.message().await.expect("the download stream broke") {
        assert_eq!(message.offset, expected_offset, "chunks follow each other");
        assert!(message.data.len() <= 1024 * 1024, "a chunk of {} bytes", message.data.len());
        assert_eq!(message.backup.is_some(), first, "the backup comes with the first message only");
        if let Some(sent) = &message.backup {
            assert_eq!(sent, backup);
        }
        first = false;
        expected_offset += message.data.len() as i64;
        data.extend_from_slice(&message.data);
    }
    assert!(!first, "at least one message");
    data
}

/// The error that ends a DownloadBackup stream (or refuses it).
async fn download_error(server: &TestServer, backup_id: &str, offset: i64) -> tonic::Status {
    let request =
        pb::DownloadBackupRequest { backup_id: backup_id.to_owned(), offset, database_name: String::new() };
    let mut stream = match server.exports().download_backup(request).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => return status,
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the download of {backup_id} from {offset} succeeded"),
            Err(status) => return status,
        }
    }
}

/// `url` with one character of its token's signature changed.
fn tampered(url: &str) -> String {
    let last = url.chars().last().expect("a URL");
    let other = if last == 'A' { 'B' } else { 'A' };
    format!("{}{other}", &url[..url.len() - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_backup_downloads_through_a_signed_link_whole_in_ranges_and_by_grpc() {
    let source = redis_with_megabytes();
    let server = TestServer::start().await;
    let database = server.register_redis("download-source", &source).await;
    let backup = ready_backup(&server, &database, "").await;
    let stored = std::fs::read(files::path_of_uri(&backup.uri)).expect("the stored object");
    assert_eq!(sha256_hex(&stored), backup.sha256);
    assert!(stored.len() > 2 * 1024 * 1024, "a backup of several chunks: {} bytes", stored.len());

    let before = chrono::Utc::now().timestamp();
    let exported = export(&server, &backup.id, 0).await;
    assert_eq!(exported.backup.as_ref(), Some(&backup));
    let expire = exported.download_url_expire_time.expect("an expiry").seconds;
    assert!((before + 3599..=before + 3602).contains(&expire), "one hour by default: {expire} vs {before}");
    let url = exported.download_url;
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/download/"), "{url}");

    let response = get(&url, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/octet-stream");
    assert_eq!(header(&response, "content-length"), stored.len().to_string());
    let filename = backup.object_key.rsplit('/').next().unwrap();
    assert_eq!(header(&response, "content-disposition"), format!("attachment; filename=\"{filename}\""));
    let body = response.bytes().await.expect("the body");
    assert_eq!(sha256_hex(&body), backup.sha256, "the downloaded bytes are the backup's");

    // curl, as a person would: the whole object, then a range.
    let dir = tempfile::tempdir().unwrap();
    let fetched = dir.path().join("fetched");
    let curl =
        files::tool("curl", "curl not found: run scripts/test (it installs it) or apt-get install curl");
    let status = std::process::Command::new(&curl)
        .args(["-sSf", "--noproxy", "*", "-o"])
        .arg(&fetched)
        .arg(&url)
        .status();
    assert!(status.is_ok_and(|status| status.success()), "curl fetched the link");
    assert_eq!(files::sha256_hex(&fetched), backup.sha256, "curl's bytes are the backup's");
    let ranged = std::process::Command::new(&curl)
        .args(["-sSf", "--noproxy", "*", "-r", "100-199"])
        .arg(&url)
        .output();
    assert_eq!(ranged.expect("curl -r").stdout, stored[100..200]);

    let head = http().head(&url).send().await.expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), stored.len().to_string());
    assert!(head.bytes().await.unwrap().is_empty());

    let size = stored.len();
    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=1048570-1048580", 1_048_570, 1_048_580),
        ("bytes=-100", size - 100, size - 1),
        (&format!("bytes={}-", size - 5), size - 5, size - 1),
        (&format!("bytes=0-{}", size + 100), 0, size - 1),
    ] {
        let response = get(&url, Some(range)).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(header(&response, "content-range"), format!("bytes {start}-{end}/{size}"), "{range}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), &stored[start..=end], "{range}");
    }
    let response = get(&url, Some(&format!("bytes={size}-"))).await;
    assert_eq!(response.status(), 416);
    assert_eq!(header(&response, "content-range"), format!("bytes */{size}"));

    // DownloadBackup: the same bytes whole, and resumed mid-chunk.
    assert_eq!(sha256_hex(&download(&server, &backup, 0).await), backup.sha256);
    let resumed = download(&server, &backup, 1_500_001).await;
    assert_eq!(resumed, stored[1_500_001..]);
    assert!(download(&server, &backup, size as i64).await.is_empty(), "at the end: one empty message");
    let status = download_error(&server, &backup.id, size as i64 + 1).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_invalid(Err::<(), _>(download_error(&server, &backup.id, -1).await), "offset");

    // Nothing but the token is read from the URL.
    let base = url.split("/download/").next().unwrap();
    for path in ["/", "/download/", "/download/..%2F..%2Fetc%2Fpasswd", "/metrics", "/download/a/b"] {
        assert_eq!(get(&format!("{base}{path}"), None).await.status(), 404, "{path}");
    }
    assert_eq!(http().post(&url).send().await.unwrap().status(), 405);
    assert_eq!(get(&tampered(&url), None).await.status(), 403);
    let (payload, signature) = url.rsplit_once('/').unwrap().1.split_once('.').unwrap();
    let other_payload =
        format!("{}{}", &payload[..payload.len() - 1], if payload.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(get(&format!("{base}/download/{other_payload}.{signature}"), None).await.status(), 403);

    let token = url.rsplit_once('/').unwrap().1;
    assert!(!logs::captured().contains(token), "the token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_expire_name_one_object_of_one_backup_and_outlive_a_restart() {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source
    });
    let mut server = TestServer::start().await;
    let database = server.register_redis("links-source", &source).await;
    let first = ready_backup(&server, &database, "").await;
    let second = ready_backup(&server, &database, "").await;

    // Tokens signed with the server's own key (kept in the data directory, 0600).
    let key_file = server.data_dir().join("download.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).expect("the key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = cellar::download::key::read(&key_file).expect("the key");
    let signer = cellar::download::token::Signer::new(&key);
    let sign = |backup: &pb::Backup, object_key: &str, expires: i64| {
        signer.sign(&cellar::download::token::Claims {
            backup_id: backup.id.parse().expect("a backup id"),
            object_key: object_key.to_owned(),
            expires,
        })
    };
    let exported = export(&server, &first.id, 0).await;
    let base = exported.download_url.split("/download/").next().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let link = |token: String| format!("{base}/download/{token}");
    assert_eq!(get(&link(sign(&first, &first.object_key, now + 60)), None).await.status(), 200);
    assert_eq!(get(&link(sign(&first, &first.object_key, now - 1)), None).await.status(), 403, "expired");
    assert_eq!(
        get(&link(sign(&first, &second.object_key, now + 60)), None).await.status(),
        403,
        "a token for one backup cannot open another's object"
    );
    assert_eq!(get(&link(sign(&first, "../../../etc/passwd", now + 60)), None).await.status(), 403);
    let unknown = pb::Backup { id: unknown_id(), ..first.clone() };
    assert_eq!(get(&link(sign(&unknown, &first.object_key, now + 60)), None).await.status(), 404);

    // A short-lived link works, then is refused once its second has passed.
    let short = export(&server, &second.id, 1).await;
    let expire = short.download_url_expire_time.unwrap().seconds;
    let response = get(&short.download_url, None).await;
    if chrono::Utc::now().timestamp() < expire {
        assert_eq!(response.status(), 200);
        assert_eq!(sha256_hex(&response.bytes().await.unwrap()), second.sha256);
    }
    poll("the short link to expire", crate::support::PATIENCE, || async {
        (get(&short.download_url, None).await.status() == 403).then_some(())
    })
    .await;

    // The key is kept: a link made before a restart works after it (on the listener's
    // new port).
    let token = export(&server, &second.id, 600).await.download_url.rsplit_once('/').unwrap().1.to_owned();
    server.restart().await;
    let base =
        export(&server, &second.id, 0).await.download_url.split("/download/").next().unwrap().to_owned();
    let response = get(&format!("{base}/download/{token}"), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(sha256_hex(&response.bytes().await.unwrap()), second.sha256);

    // Deleted: the link answers 404, ExportBackup NOT_FOUND.
    let delete = pb::DeleteBackupRequest { id: second.id.clone(), request_id: String::new() };
    let started = server.backups().delete_backup(delete).await.expect("DeleteBackup").into_inner();
    server.wait_done(&started.name).await;
    assert_eq!(get(&format!("{base}/download/{token}"), None).await.status(), 404);
    let request = pb::ExportBackupRequest { backup_id: second.id.clone(), ..Default::default() };
    assert_code(server.exports().export_backup(request).await, Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_be_served_are_refused_with_stable_reasons() {
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let server = TestServer::start().await;
    let database = server.register_redis("refusals", &source).await;
    let backup = ready_backup(&server, &database, "").await;
    let ttl = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
    for url_ttl in [ttl(7 * 86_400 + 1, 0), ttl(-1, 0), ttl(0, 1000)] {
        let request =
            pb::ExportBackupRequest { backup_id: backup.id.clone(), url_ttl, database_name: String::new() };
        assert_invalid(server.exports().export_backup(request).await, "url_ttl");
    }
    let request = pb::ExportBackupRequest {
        backup_id: backup.id.clone(),
        url_ttl: ttl(7 * 86_400, 0),
        ..Default::default()
    };
    let week = server.exports().export_backup(request).await.expect("seven days is allowed").into_inner();
    assert!(
        week.download_url_expire_time.unwrap().seconds >= chrono::Utc::now().timestamp() + 7 * 86_400 - 5
    );
    let request = pb::ExportBackupRequest {
        backup_id: backup.id.clone(),
        database_name: "orders".into(),
        ..Default::default()
    };
    assert_invalid(server.exports().export_backup(request).await, "database_name");
    let request = pb::ExportBackupRequest { backup_id: "not-an-id".into(), ..Default::default() };
    assert_invalid(server.exports().export_backup(request).await, "backup_id");
    let request = pb::ExportBackupRequest { backup_id: unknown_id(), ..Default::default() };
    assert_code(server.exports().export_backup(request).await, Code::NotFound);
    assert_eq!(download_error(&server, &unknown_id(), 0).await.code(), Code::NotFound);

    // A backup that failed (its source is gone) is not READY.
    let mut gone = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let gone_database = server.register_redis("gone", &gone).await;
    blocking(|| gone.kill());
    let created = server.start_backup(backup_of(&gone_database.id)).await;
    let failed = server.wait_done(&created.name).await;
    assert_eq!(failed.state(), pb::OperationState::Failed, "{failed:?}");
    let failed_id = failed.meta().backup_id.clone();
    let request = pb::ExportBackupRequest { backup_id: failed_id.clone(), ..Default::default() };
    let status = assert_code(server.exports().export_backup(request).await, Code::FailedPrecondition);
    assert_eq!(error_reason(&status).as_deref(), Some("BACKUP_NOT_READY"));
    let status = download_error(&server, &failed_id, 0).await;
    assert_eq!(
        (status.code(), error_reason(&status).as_deref()),
        (Code::FailedPrecondition, Some("BACKUP_NOT_READY"))
    );

    // A stored object changed behind Cellar's back: the same size, another byte.
    let path = files::path_of_uri(&backup.uri);
    let mut stored = std::fs::read(&path).unwrap();
    let last = stored.len() - 1;
    stored[last] ^= 0xff;
    std::fs::write(&path, &stored).unwrap();
    let status = download_error(&server, &backup.id, 0).await;
    assert_eq!(
        (status.code(), error_reason(&status).as_deref()),
        (Code::DataLoss, Some("BACKUP_OBJECT_DAMAGED"))
    );
    // Shorter than recorded: refused before a byte is sent.
    std::fs::write(&path, &stored[..last]).unwrap();
    let status = download_error(&server, &backup.id, 0).await;
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert_eq!(get(&export(&server, &backup.id, 0).await.download_url, None).await.status(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_listener_a_local_backup_has_no_download_url_but_still_downloads_by_grpc() {
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let server =
        TestServer::start_with(ServerOptions { download_listen: None, ..ServerOptions::default() }).await;
    let database = server.register_redis("no-listener", &source).await;
    let backup = ready_backup(&server, &database, "").await;
    let request = pb::ExportBackupRequest { backup_id: backup.id.clone(), ..Default::default() };
    let status = assert_code(server.exports().export_backup(request).await, Code::FailedPrecondition);
    assert_eq!(error_reason(&status).as_deref(), Some("DOWNLOAD_UNAVAILABLE"));
    assert!(!server.data_dir().join("download.key").exists(), "no key without a listener");
    assert_eq!(sha256_hex(&download(&server, &backup, 0).await), backup.sha256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_backup_gets_a_presigned_url_and_an_azure_sas_backup_a_listener_link() {
    // moto refuses query-string signatures when it checks signatures: this one does not.
    let moto = blocking(Moto::start_unchecked);
    let azurite = blocking(Azurite::start);
    let source = redis_with_megabytes();
    let server = TestServer::start().await;
    let database = server.register_redis("cloud-source", &source).await;

    let endpoint = moto.endpoint();
    let s3 = server
        .create_destination(
            "moto",
            &format!("s3://{}/downloads", moto.bucket),
            &[("access_key_id", &moto.access_key_id), ("secret_access_key", &moto.secret_access_key)],
            &[("endpoint", &endpoint), ("allow_http", "true"), ("region", "us-east-1")],
        )
        .await;
    let backup = ready_backup(&server, &database, &s3.id).await;
    let exported = export(&server, &backup.id, 300).await;
    let url = exported.download_url;
    assert!(url.starts_with(&format!("{endpoint}/{}/downloads/", moto.bucket)), "the store's own URL: {url}");
    assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=300"), "{url}");
    assert!(!url.contains(&moto.secret_access_key), "{url}");
    let response = get(&url, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(sha256_hex(&response.bytes().await.unwrap()), backup.sha256);
    let resumed = download(&server, &backup, 1_048_576).await;
    let whole = download(&server, &backup, 0).await;
    assert_eq!(sha256_hex(&whole), backup.sha256);
    assert_eq!(resumed, whole[1_048_576..]);

    // A SAS token cannot sign another: the listener serves the object from Azure.
    let sas = blocking(|| azurite.container_sas());
    let azure_endpoint = azurite.endpoint();
    let azure = server
        .create_destination(
            "azurite-sas",
            &format!("az://{}/downloads", azurite.container),
            &[("account_name", AZURITE_ACCOUNT), ("sas_token", &sas)],
            &[("endpoint", &azure_endpoint), ("allow_http", "true")],
        )
        .await;
    let backup = ready_backup(&server, &database, &azure.id).await;
    let url = export(&server, &backup.id, 0).await.download_url;
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/download/"), "a listener link: {url}");
    assert!(!url.contains("sig="), "{url}");
    let response = get(&url, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(sha256_hex(&response.bytes().await.unwrap()), backup.sha256);
    let response = get(&url, Some("bytes=-1000")).await;
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        &whole_of(&server, &backup).await[backup.size_bytes as usize - 1000..]
    );
    assert!(!logs::captured().contains(&sas), "the SAS token was logged");
}

async fn whole_of(server: &TestServer, backup: &pb::Backup) -> Vec<u8> {
    download(server, backup, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_server_backup_downloads_its_manifest_or_one_part_by_database_name() {
    let postgres = blocking(|| {
        let postgres = crate::support::sql_servers::PostgresServer::start();
        for name in ["alpha", "beta"] {
            postgres.create_database(name);
            postgres.psql(name, "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 300) g;");
        }
        postgres
    });
    let server = TestServer::start().await;
    let database = pb::Database {
        name: "pg-whole".to_owned(),
        engine: pb::Engine::Postgres as i32,
        connection_uri: postgres.url(""),
        ..Default::default()
    };
    let database = server.register(database).await;
    let backup = ready_backup(&server, &database, "").await;
    let parts: Vec<&str> = backup.parts.iter().map(|part| part.database_name.as_str()).collect();
    assert_eq!(parts, ["alpha", "beta"], "{backup:?}");

    // Without a name: the manifest, whose SHA-256 is the backup's.
    let manifest = get(&export(&server, &backup.id, 0).await.download_url, None).await;
    assert_eq!(manifest.status(), 200);
    let manifest = manifest.bytes().await.unwrap();
    assert_eq!(sha256_hex(&manifest), backup.sha256);
    assert!(String::from_utf8_lossy(&manifest).contains("\"parts\""));
    assert_eq!(download(&server, &backup, 0).await, manifest);

    for part in &backup.parts {
        let request = pb::ExportBackupRequest {
            backup_id: backup.id.clone(),
            database_name: part.database_name.clone(),
            ..Default::default()
        };
        let url =
            server.exports().export_backup(request).await.expect("ExportBackup").into_inner().download_url;
        let response = get(&url, None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(sha256_hex(&response.bytes().await.unwrap()), part.sha256, "{}", part.database_name);
        let request = pb::DownloadBackupRequest {
            backup_id: backup.id.clone(),
            offset: 0,
            database_name: part.database_name.clone(),
        };
        let mut stream =
            server.exports().download_backup(request).await.expect("DownloadBackup").into_inner();
        let mut data = Vec::new();
        while let Some(message) = stream.message().await.expect("the stream") {
            data.extend_from_slice(&message.data);
        }
        assert_eq!(sha256_hex(&data), part.sha256, "{}", part.database_name);
    }
    let request = pb::ExportBackupRequest {
        backup_id: backup.id.clone(),
        database_name: "gamma".into(),
        ..Default::default()
    };
    assert_invalid(server.exports().export_backup(request).await, "database_name");
}
