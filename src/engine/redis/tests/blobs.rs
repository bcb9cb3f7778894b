//! Compact blobs that do not hold together, in data from elsewhere whose checksum still
//! matches (a file saved with `rdbchecksum no`, or made by another tool): Redis's loader
//! stops the whole server when a replica meets one, and a `RESTORE` refused after the
//! flush leaves the target half loaded, so the check refuses them before anything is
//! touched.

use super::{RedisServer, assert_refused_unchanged, read_body, run_text, sealed, snapshot};

/// A real RDB of a few keys and a small hash (a listpack) whose `change` is applied to
/// its listpack's bytes: `f1 v1 f2 v2`, then the end mark.
async fn rdb_with_a_hash_changed(change: fn(&mut Vec<u8>)) -> Vec<u8> {
    let source = RedisServer::start(&["--rdbcompression", "no"]).await;
    let mut client = source.client("").await;
    run_text(&mut client, &["DEBUG", "POPULATE", "100", "plain", "16"]).await;
    run_text(&mut client, &["HSET", "h", "f1", "v1", "f2", "v2"]).await;
    let (snapshot, _) = snapshot(&source.uri("")).await;
    let data = read_body(&mut snapshot.unwrap()).await.unwrap();
    let entries = b"\x82f1\x03\x82v1\x03\x82f2\x03\x82v2\x03\xff";
    let at = data.windows(entries.len()).position(|window| window == entries).expect("the hash's listpack");
    let mut blob = entries.to_vec();
    change(&mut blob);
    sealed([&data[..at], &blob, &data[at + entries.len()..data.len() - 8]].concat())
}

#[tokio::test]
async fn a_listpack_without_its_end_mark_is_refused_before_anything_changes() {
    let rdb = rdb_with_a_hash_changed(|blob| *blob.last_mut().unwrap() = 0x00).await;
    assert_refused_unchanged(&rdb, "listpack").await;
}

#[tokio::test]
async fn a_hash_listpack_holding_a_field_twice_is_refused_before_anything_changes() {
    // f2 becomes f1: a replica with `sanitize-dump-payload yes` stops on it.
    let rdb = rdb_with_a_hash_changed(|blob| blob[10] = b'1').await;
    assert_refused_unchanged(&rdb, "holding 'f1' twice").await;
}
