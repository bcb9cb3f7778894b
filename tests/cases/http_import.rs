//! ImportDatabase from http:// sources, served by the harness's file server on loopback
//! (which the default TestServer allows): plain, gzip and zstd RDBs recognised by content
//! whatever their names, several URIs mixed with file:// in order after one flush, Basic
//! auth with the password never shown, 404 and corrupt bodies failing with the target
//! untouched, a retried 500, and the URL policy refusing internal hosts not on the
//! allow-list, at the RPC and on a redirect.

use crate::support::files::compress;
use std::path::PathBuf;

use crate::support::{
    HttpServer, OperationExt, RedisOptions, RedisServer, ServerOptions, TestServer, assert_code,
    assert_no_secret, blocking, error_reason, pb,
};

async fn import(server: &TestServer, database_id: &str, uris: &[String]) -> pb::Operation {
    let request = pb::ImportDatabaseRequest {
        database_id: database_id.to_owned(),
        source_uris: uris.to_vec(),
        ..Default::default()
    };
    let started = server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
    server.wait_done(&started.name).await
}

/// A saved RDB of a server holding `keys` keys named `prefix:N`; the server stays up.
fn rdb_of(prefix: &str, keys: u32) -> (RedisServer, PathBuf) {
    let source = RedisServer::start(RedisOptions::disk());
    source.call(&["DEBUG", "POPULATE", &keys.to_string(), prefix, "32"]);
    source.call(&["SAVE"]);
    let path = source.dir().join("dump.rdb");
    (source, path)
}

fn import_result(operation: &pb::Operation) -> &pb::ImportResult {
    match &operation.result {
        Some(pb::operation::Result::Response(pb::OperationResponse {
            result: Some(pb::operation_response::Result::ImportResult(result)),
        })) => result,
        _ => panic!("no import result in {operation:?}"),
    }
}

/// A target holding one precious key, its digest, and its registration.
async fn precious_target(server: &TestServer, name: &str) -> (RedisServer, String, pb::Database) {
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "precious", "kept"]));
    let before = blocking(|| target.digest());
    let database = server.register_redis(name, &target).await;
    (target, before, database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rdb_over_http_is_imported_with_the_same_digest() {
    let server = TestServer::start().await;
    let http = HttpServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::disk());
        source.load_every_type();
        source.call(&["SAVE"]);
        source
    });
    http.put("dump.rdb", &source.dir().join("dump.rdb"));
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "stale", "replaced"]));
    let database = server.register_redis("http-import-target", &target).await;

    let done = import(&server, &database.id, &[http.file_url("dump.rdb")]).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    let progress = done.meta().progress.clone().unwrap();
    assert_eq!(progress.items_done as u64, blocking(|| source.key_count()));
    assert_eq!(import_result(&done).source_uris, [http.file_url("dump.rdb")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_file_sources_load_in_order_after_one_flush_whatever_their_names_say() {
    let server = TestServer::start().await;
    let http = HttpServer::start().await;
    let (_a, plain) = blocking(|| rdb_of("alpha", 100));
    let (_b, second) = blocking(|| rdb_of("beta", 200));
    let (_c, third) = blocking(|| rdb_of("gamma", 300));
    let (_d, fourth) = blocking(|| rdb_of("delta", 50));
    // Misleading names: the compression is recognised by content.
    http.put("alpha.rdb.zst", &plain);
    http.put("beta.rdb", &compress(&second, "gzip", ".gz"));
    http.put("gamma.rdb.gz", &compress(&third, "zstd", ".zst"));
    let local = compress(&fourth, "gzip", ".gz");

    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "stale", "flushed"]));
    let database = server.register_redis("http-mixed-target", &target).await;
    let uris = [
        http.file_url("alpha.rdb.zst"),
        format!("file://{}", local.display()),
        http.file_url("beta.rdb"),
        http.file_url("gamma.rdb.gz"),
    ];
    let done = import(&server, &database.id, &uris).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.key_count()), 650);
    for key in ["alpha:0", "delta:49", "beta:199", "gamma:299"] {
        assert_eq!(blocking(|| target.call(&["EXISTS", key])).text(), "1", "{key}");
    }
    assert_eq!(blocking(|| target.call(&["EXISTS", "stale"])).text(), "0", "the target was flushed first");
    let shown = &import_result(&done).source_uris;
    assert_eq!(shown.len(), 4);
    assert_eq!(shown[0], uris[0]);
    assert!(shown[1].starts_with("file://") && shown[1].ends_with(".gz"), "{shown:?}");
    assert_eq!(shown[2..], uris[2..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_and_the_password_never_shows() {
    const PASSWORD: &str = "hunter2-very-secret";
    let server = TestServer::start().await;
    let http = HttpServer::with_basic_auth("backup", PASSWORD).await;
    let (source, rdb) = blocking(|| rdb_of("auth", 120));
    http.put("dump.rdb", &rdb);
    let (target, before, database) = precious_target(&server, "http-auth-target").await;
    let with_password = |password: &str| {
        http.file_url("dump.rdb").replacen("http://", &format!("http://backup:{password}@"), 1)
    };

    // A wrong password: STORAGE_DENIED, the target untouched, no password anywhere.
    let denied = import(&server, &database.id, &[with_password("wrong-guess-pw")]).await;
    assert_eq!(denied.state(), pb::OperationState::Failed, "{denied:?}");
    assert_eq!(denied.error().unwrap().reason, "STORAGE_DENIED", "{denied:?}");
    assert_eq!(denied.error().unwrap().code, tonic::Code::PermissionDenied as i32);
    assert_no_secret("wrong-guess-pw", &denied);
    assert!(denied.error().unwrap().message.contains("backup:****@127.0.0.1"), "{denied:?}");
    assert_eq!(blocking(|| target.digest()), before, "the target is untouched");

    // No credentials at all: denied the same way.
    let anonymous = import(&server, &database.id, &[http.file_url("dump.rdb")]).await;
    assert_eq!(anonymous.error().unwrap().reason, "STORAGE_DENIED", "{anonymous:?}");

    let done = import(&server, &database.id, &[with_password(PASSWORD)]).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    assert_no_secret(PASSWORD, &done);
    assert_eq!(
        import_result(&done).source_uris,
        [http.file_url("dump.rdb").replacen("http://", "http://backup:****@", 1)]
    );
    let listed = server
        .operations()
        .list_operations(pb::ListOperationsRequest::default())
        .await
        .expect("ListOperations")
        .into_inner();
    assert_no_secret(PASSWORD, &listed);
    assert_no_secret("wrong-guess-pw", &listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_corrupt_source_fails_with_the_target_untouched() {
    let server = TestServer::start().await;
    let http = HttpServer::start().await;
    let (_source, rdb) = blocking(|| rdb_of("fine", 50));
    http.put("fine.rdb", &rdb);
    std::fs::write(http.dir().join("notes.rdb"), "this is not an rdb file at all\n".repeat(100)).unwrap();
    let mut truncated = std::fs::read(&rdb).unwrap();
    truncated.truncate(truncated.len() / 2);
    std::fs::write(http.dir().join("half.rdb"), truncated).unwrap();
    let (target, before, database) = precious_target(&server, "http-broken-target").await;

    // The first source is fine: nothing is loaded until every source has been read.
    let missing =
        import(&server, &database.id, &[http.file_url("fine.rdb"), http.file_url("nowhere.rdb")]).await;
    assert_eq!(missing.state(), pb::OperationState::Failed, "{missing:?}");
    assert_eq!(missing.error().unwrap().reason, "SOURCE_NOT_FOUND", "{missing:?}");
    assert_eq!(missing.error().unwrap().code, tonic::Code::NotFound as i32);
    assert!(missing.error().unwrap().message.contains("nowhere.rdb"), "{missing:?}");
    assert_eq!(blocking(|| target.digest()), before, "the target is untouched");

    for corrupt in ["notes.rdb", "half.rdb"] {
        let failed = import(&server, &database.id, &[http.file_url(corrupt)]).await;
        assert_eq!(failed.state(), pb::OperationState::Failed, "{failed:?}");
        assert_eq!(failed.error().unwrap().reason, "SOURCE_CORRUPT", "{corrupt}: {failed:?}");
        assert_eq!(blocking(|| target.digest()), before, "{corrupt}: the target is untouched");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_is_retried() {
    let server = TestServer::start().await;
    let http = HttpServer::start().await;
    let (source, rdb) = blocking(|| rdb_of("flaky", 80));
    http.put("dump.rdb", &rdb);
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let database = server.register_redis("http-flaky-target", &target).await;

    let done = import(&server, &database.id, &[http.url("/flaky/dump.rdb")]).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(http.flaky_hits("dump.rdb"), 2, "one 500, then the file");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_hosts_off_the_allow_list_are_refused() {
    let server = TestServer::start().await;
    let http = HttpServer::start().await;
    let (source, rdb) = blocking(|| rdb_of("policy", 40));
    http.put("dump.rdb", &rdb);
    let (target, before, database) = precious_target(&server, "http-policy-target").await;
    let request = |uri: String| pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: vec![uri],
        ..Default::default()
    };

    // Loopback, but not the allowed 127.0.0.1: refused at once.
    let other_loopback = format!("http://u:hunter2@127.0.0.2:{}/files/dump.rdb", http.port());
    let status = assert_code(
        server.imports().import_database(request(other_loopback)).await,
        tonic::Code::PermissionDenied,
    );
    assert_eq!(error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{status:?}");
    assert!(
        status.message().contains("source_uris[0]") && status.message().contains("loopback"),
        "{status:?}"
    );
    assert_no_secret("hunter2", &status);
    // A name resolving to loopback is not on the list either.
    let by_name = format!("http://localhost:{}/files/dump.rdb", http.port());
    let status = assert_code(
        server.imports().import_database(request(by_name.clone())).await,
        tonic::Code::PermissionDenied,
    );
    assert_eq!(error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{status:?}");

    // A redirect from the allowed host to hosts that are not: refused when followed.
    let redirect_to = |target: &str| {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("to", target).finish();
        http.url(&format!("/redirect?{query}"))
    };
    let literal = format!("http://127.0.0.2:{}/files/dump.rdb", http.port());
    for target_url in [literal.as_str(), by_name.as_str()] {
        let refused = import(&server, &database.id, &[redirect_to(target_url)]).await;
        assert_eq!(refused.state(), pb::OperationState::Failed, "{refused:?}");
        let error = refused.error().unwrap();
        assert_eq!(error.reason, "URL_NOT_ALLOWED", "{target_url}: {refused:?}");
        assert_eq!(error.code, tonic::Code::PermissionDenied as i32);
        assert_eq!(blocking(|| target.digest()), before, "the target is untouched");
    }

    // A redirect that stays on the allowed host is followed.
    let done = import(&server, &database.id, &[redirect_to(&http.file_url("dump.rdb"))]).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allow_list_loopback_is_refused() {
    let server =
        TestServer::start_with(ServerOptions { allow_hosts: Vec::new(), ..Default::default() }).await;
    let http = HttpServer::start().await;
    let (target, before, database) = precious_target(&server, "http-closed-target").await;
    let request = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: vec![http.file_url("dump.rdb")],
        ..Default::default()
    };
    let status = assert_code(server.imports().import_database(request).await, tonic::Code::PermissionDenied);
    assert_eq!(error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{status:?}");
    assert!(status.message().contains("--allow-host"), "{status:?}");
    assert_eq!(blocking(|| target.digest()), before);

    let invalid = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: vec![http.file_url("dump.rdb"), "https://".into()],
        ..Default::default()
    };
    crate::support::assert_invalid(server.imports().import_database(invalid).await, "source_uris[1]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_streams_from_an_offset_and_reports_sizes() {
    use cellar::net::{AllowedHost, UrlPolicy};
    use cellar::storage::http::HttpClient;
    use tokio::io::AsyncReadExt;

    let http = HttpServer::start().await;
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(http.dir().join("blob"), &content).unwrap();
    let client = HttpClient::new(UrlPolicy::new(vec![AllowedHost::parse("127.0.0.1").unwrap()])).unwrap();
    let url = url::Url::parse(&http.file_url("blob")).unwrap();

    assert_eq!(client.head(&url).await.expect("HEAD").size, Some(100_000));
    for offset in [0u64, 1, 65_536, 99_999, 100_000] {
        let mut reader = client.open(&url, offset).await.expect("GET");
        assert_eq!(reader.size, Some(100_000), "offset {offset}: the whole size, whatever the offset");
        let mut read = Vec::new();
        reader.body.read_to_end(&mut read).await.expect("read the body");
        assert_eq!(read, content[offset as usize..], "offset {offset}");
    }
    // Five redirects are followed; a sixth is one too many.
    let mut chained = http.file_url("blob");
    for hops in 1..=6 {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("to", &chained).finish();
        chained = http.url(&format!("/redirect?{query}"));
        let result = client.head(&url::Url::parse(&chained).unwrap()).await;
        match (hops, result) {
            (..=5, Ok(head)) => assert_eq!(head.size, Some(100_000)),
            (6, Err(error @ cellar::storage::Error::Unreachable { .. })) => {
                assert!(error.to_string().contains("redirect"), "{error}")
            }
            (hops, other) => panic!("{hops} redirects: unexpected {other:?}"),
        }
    }

    let missing = url::Url::parse(&http.file_url("absent")).unwrap();
    match client.head(&missing).await {
        Err(cellar::storage::Error::NotFound { key }) => assert!(key.ends_with("/files/absent"), "{key}"),
        other => panic!("expected not found, got {other:?}"),
    }
}
