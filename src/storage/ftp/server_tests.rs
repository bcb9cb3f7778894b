//! Tests of the FTP backend against a real FTP server.

use std::time::Instant;

use super::*;
use crate::domain::ResourceName;
use crate::storage::suite;
use crate::storage::test_servers::StorageServer;

const USER: &str = "cellar";
const PASSWORD: &str = "pw-hunter2";

fn storage_at(server: &StorageServer, password: &str, dir: &str) -> FtpStorage {
    let uri = format!("ftp://{USER}:{password}@127.0.0.1:{}{dir}", server.port);
    let destination = Destination::unregistered(ResourceName::parse("ftp").unwrap(), &uri, &[], &[]);
    let policy = UrlPolicy::new(vec![net::AllowedHost::parse("127.0.0.1").unwrap()]);
    FtpStorage::new(&Url::parse(&uri).unwrap(), &destination, policy).unwrap()
}

/// Waits for the clean-ups that dropped writers spawned.
async fn wait_for_files(server: &StorageServer, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.files() != expected {
        assert!(Instant::now() < deadline, "files left on the server: {:?}", server.files());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn passes_the_shared_suite() {
    let server = StorageServer::ftp(USER, PASSWORD);
    let storage = storage_at(&server, PASSWORD, "/backups/cellar");
    suite::run_all(&storage).await;
    // 64 MiB, generated and checked one 64 KiB chunk at a time.
    suite::large_object(&storage, "big", 1024).await;
    wait_for_files(&server, &[]).await;
}

#[tokio::test]
async fn temporaries_are_hidden_beside_the_object_until_commit() {
    let server = StorageServer::ftp(USER, PASSWORD);
    let storage = storage_at(&server, PASSWORD, "");
    let mut writer = storage.writer("db/backup/dump.rdb").await.unwrap();
    writer.write(Bytes::from_static(b"hello\r\n\n\0")).await.unwrap();
    assert_eq!(writer.commit().await.unwrap(), 9);
    assert_eq!(server.files(), ["db/backup/dump.rdb"]);
    assert_eq!(std::fs::read(server.dir.path().join("db/backup/dump.rdb")).unwrap(), b"hello\r\n\n\0");

    let mut pending = storage.writer("db/backup/manifest.json").await.unwrap();
    pending.write(Bytes::from_static(b"{}")).await.unwrap();
    let during = server.files();
    assert_eq!(during.len(), 2, "{during:?}");
    assert!(during[0].starts_with("db/backup/.manifest.json.partial-"), "{during:?}");
    drop(pending);
    wait_for_files(&server, &["db/backup/dump.rdb"]).await;

    storage.delete("db/backup/dump.rdb").await.unwrap();
    assert!(!server.dir.path().join("db").exists(), "emptied directories are removed");
}

#[tokio::test]
async fn concurrent_writes_and_reads_use_their_own_connections() {
    let server = StorageServer::ftp(USER, PASSWORD);
    let storage = storage_at(&server, PASSWORD, "/c");
    let writes = (0..6).map(|index| {
        let storage = storage.clone();
        async move {
            let mut writer = storage.writer(&format!("k{index}")).await.unwrap();
            for _ in 0..50 {
                writer.write(Bytes::from(vec![index as u8; 10_000])).await.unwrap();
            }
            writer.commit().await.unwrap()
        }
    });
    assert_eq!(futures::future::join_all(writes).await, vec![500_000; 6]);
    let reads = (0..6).map(|index| {
        let storage = storage.clone();
        async move {
            let mut body = storage.reader(&format!("k{index}"), 0).await.unwrap().body;
            let mut bytes = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut body, &mut bytes).await.unwrap();
            bytes.iter().all(|byte| *byte == index as u8) && bytes.len() == 500_000
        }
    });
    assert!(futures::future::join_all(reads).await.into_iter().all(|ok| ok));
    let listed = storage.list("").await.unwrap();
    assert_eq!(listed.len(), 6);
}

#[tokio::test]
async fn a_wrong_password_is_denied_at_once_and_never_shown() {
    let server = StorageServer::ftp(USER, PASSWORD);
    let storage = storage_at(&server, "wrong-hunter2", "/d");
    let started = Instant::now();
    let first = storage.writer("k").await.map(|_| ()).unwrap_err();
    // pyftpdlib answers a failed login after 3 s; retries would take four times that.
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    let errors = [
        first,
        storage.reader("k", 0).await.map(|_| ()).unwrap_err(),
        storage.stat("k").await.map(|_| ()).unwrap_err(),
        storage.delete("k").await.unwrap_err(),
        storage.list("").await.map(|_| ()).unwrap_err(),
    ];
    for error in errors {
        assert!(matches!(error, Error::Denied { .. }), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn a_server_stopped_mid_upload_fails_the_write() {
    let mut server = StorageServer::ftp(USER, PASSWORD);
    let storage = storage_at(&server, PASSWORD, "/s");
    let mut writer = storage.writer("k").await.unwrap();
    writer.write(Bytes::from(vec![1u8; 1 << 20])).await.unwrap();
    server.stop();
    let mut failed = false;
    for _ in 0..64 {
        if writer.write(Bytes::from(vec![1u8; 1 << 20])).await.is_err() {
            failed = true;
            break;
        }
    }
    let committed = if failed { None } else { Some(writer.commit().await) };
    assert!(failed || committed.as_ref().is_some_and(Result::is_err), "{committed:?}");
    assert!(!server.files().contains(&"s/k".to_owned()));
}
