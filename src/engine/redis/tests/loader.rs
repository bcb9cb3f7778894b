//! The loader and `load` against real servers: dumped keys of every type restored into
//! another server, a refused key named, a snapshot replacing the target's data while a
//! damaged one leaves it untouched, and keys over the payload limit sent as element
//! batches with the same data.

use super::*;
/// Every key of `database` with its `DUMP` payload and absolute expiry (Unix ms).
async fn dump_database(connection: &mut Connection, database: u64) -> Vec<(Vec<u8>, Option<i64>, Vec<u8>)> {
    run_text(connection, &["SELECT", &database.to_string()]).await;
    let mut keys = Vec::new();
    let mut cursor = b"0".to_vec();
    loop {
        let Reply::Array(Some(parts)) = run(connection, &[b"SCAN", &cursor, b"COUNT", b"1000"]).await else {
            panic!("SCAN answered something else");
        };
        let [Reply::Bulk(Some(next)), Reply::Array(Some(found))] = &parts[..] else {
            panic!("SCAN: {parts:?}")
        };
        keys.extend(found.iter().map(|reply| match reply {
            Reply::Bulk(Some(key)) => key.to_vec(),
            other => panic!("SCAN key {other:?}"),
        }));
        cursor = next.to_vec();
        if cursor == b"0" {
            break;
        }
    }
    let mut dumped = Vec::new();
    for key in keys {
        let Reply::Bulk(Some(payload)) = run(connection, &[b"DUMP", &key]).await else { panic!("DUMP") };
        let Reply::Integer(expire) = run(connection, &[b"PEXPIRETIME", &key]).await else {
            panic!("PEXPIRETIME")
        };
        dumped.push((key, (expire > 0).then_some(expire), payload.to_vec()));
    }
    run_text(connection, &["SELECT", "0"]).await;
    dumped
}

#[tokio::test]
async fn the_loader_restores_dumped_keys_of_every_type_into_another_server() {
    let source = RedisServer::start(&[]).await;
    let mut source_client = source.client("").await;
    let keys = load_every_type(&mut source_client).await;
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    run_text(&mut target_client, &["SET", "stale", "is flushed"]).await;

    // A small window, so that reading replies interleaves with sending many times.
    let mut loader = crate::engine::redis::loader::Loader::new(target.client("").await, 8);
    loader.flush_all().await.unwrap();
    for database in [0, 1] {
        for (key, expire, payload) in dump_database(&mut source_client, database).await {
            loader.restore(database, &key, expire, &payload).await.unwrap();
        }
    }
    assert_eq!(loader.finish().await.unwrap(), keys);
    assert_eq!(digest(&mut target_client).await, digest(&mut source_client).await);
    let Reply::Integer(ttl) = run_text(&mut target_client, &["TTL", "expiring"]).await else { panic!("TTL") };
    assert!((3590..=3600).contains(&ttl), "the expiry survives: {ttl}");
}

#[tokio::test]
async fn strings_go_in_batches_that_keep_their_order_among_other_commands() {
    let source = RedisServer::start(&[]).await;
    let mut source_client = source.client("").await;
    run_text(&mut source_client, &["RPUSH", "list", "a", "b"]).await;
    let (_, _, list_payload) = dump_database(&mut source_client, 0).await.remove(0);
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;

    let mut loader = crate::engine::redis::loader::Loader::new(target.client("").await, 4);
    loader.flush_all().await.unwrap();
    // More strings than one MSET takes, some binary, in two databases.
    for index in 0..2500u32 {
        let value = format!("value\r\n\0{index}");
        loader.set(u64::from(index % 2), format!("s:{index}").as_bytes(), value.as_bytes()).await.unwrap();
    }
    // A string then a list of the same name, and the other way round: the later wins.
    loader.set(0, b"was-a-string", b"first").await.unwrap();
    loader.restore(0, b"was-a-string", None, &list_payload).await.unwrap();
    loader.restore(0, b"was-a-list", None, &list_payload).await.unwrap();
    loader.set(0, b"was-a-list", b"last").await.unwrap();
    // One string bigger than a whole batch, and an empty one.
    let big = vec![b'x'; 300 * 1024];
    loader.set(0, b"big", &big).await.unwrap();
    loader.set(0, b"", b"").await.unwrap();
    assert_eq!(loader.finish().await.unwrap(), 2500 + 6);

    let text = |reply: Reply| match reply {
        Reply::Bulk(Some(bytes)) => bytes.to_vec(),
        other => panic!("GET answered {other:?}"),
    };
    for (db, key, value) in [("0", "s:0", "value\r\n\x000"), ("1", "s:2499", "value\r\n\x002499")] {
        run_text(&mut target_client, &["SELECT", db]).await;
        assert_eq!(text(run_text(&mut target_client, &["GET", key]).await), value.as_bytes());
    }
    let Reply::Integer(keys) = run_text(&mut target_client, &["DBSIZE"]).await else { panic!("DBSIZE") };
    assert_eq!(keys, 1250);
    run_text(&mut target_client, &["SELECT", "0"]).await;
    let Reply::Integer(length) = run_text(&mut target_client, &["LLEN", "was-a-string"]).await else {
        panic!("LLEN")
    };
    assert_eq!(length, 2);
    assert_eq!(text(run_text(&mut target_client, &["GET", "was-a-list"]).await), b"last");
    assert_eq!(text(run_text(&mut target_client, &["GET", "big"]).await), big);
    assert_eq!(text(run_text(&mut target_client, &["GET", ""]).await), b"");
}

#[tokio::test]
async fn a_refused_batch_of_strings_is_named_by_its_first_key() {
    let target = RedisServer::start(&[]).await;
    let mut admin = target.client("").await;
    run_text(&mut admin, &["ACL", "SETUSER", "loader", "on", ">pw", "~*", "+@all", "-mset"]).await;
    let mut loader = crate::engine::redis::loader::Loader::new(target.client("loader:pw@").await, 4);
    loader.set(0, b"first-of-many", b"v").await.unwrap();
    loader.set(0, b"second", b"v").await.unwrap();
    let error = loader.finish().await.unwrap_err();
    assert!(
        matches!(&error, Error::AuthFailed(message) if message.contains("MSET of 2 keys from 'first-of-many'")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_loader_names_the_key_a_target_refuses() {
    let source = RedisServer::start(&[]).await;
    let mut source_client = source.client("").await;
    run_text(&mut source_client, &["SET", "good", "value"]).await;
    let (_, _, payload) = dump_database(&mut source_client, 0).await.remove(0);
    let target = RedisServer::start(&[]).await;

    // A payload from the future: RDB version 255, with a correct checksum.
    let mut future = payload[..payload.len() - 10].to_vec();
    future.extend_from_slice(&255u16.to_le_bytes());
    let future = super::sealed(future);
    let mut loader = crate::engine::redis::loader::Loader::new(target.client("").await, 4);
    loader.restore(0, b"from-the-future", None, &future).await.unwrap();
    let error = loader.finish().await.unwrap_err();
    assert!(
        matches!(&error, Error::TargetTooOld(message) if message.contains("from-the-future")),
        "{error:?}"
    );

    // A payload whose checksum is right but whose body is not a value.
    let mut garbage = vec![0u8, 0xC3, 0xFF, 0xFF];
    garbage.extend_from_slice(&payload[payload.len() - 10..payload.len() - 8]);
    let garbage = super::sealed(garbage);
    let mut loader = crate::engine::redis::loader::Loader::new(target.client("").await, 4);
    loader.restore(0, b"garbage", None, &garbage).await.unwrap();
    let error = loader.finish().await.unwrap_err();
    assert!(matches!(&error, Error::Corrupt(message) if message.contains("garbage")), "{error:?}");
}

#[tokio::test]
async fn load_replaces_the_target_with_a_snapshot_and_refuses_a_damaged_one_untouched() {
    let source = RedisServer::start(DISK).await;
    let mut source_client = source.client("").await;
    load_every_type(&mut source_client).await;
    let (snapshot, _) = snapshot(&source.uri("")).await;
    let data = read_body(&mut snapshot.unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.rdb");

    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    run_text(&mut target_client, &["SET", "stale", "before"]).await;
    let before = digest(&mut target_client).await;

    // Damaged: cut short, then one byte changed. Either way the target keeps its data.
    for damaged in [data[..data.len() - 100].to_vec(), {
        let mut changed = data.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        changed
    }] {
        std::fs::write(&path, &damaged).unwrap();
        let result = RedisEngine::default()
            .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &|_| {}, &|_, _, _| {})
            .await;
        assert!(matches!(result, Err(Error::Corrupt(_))), "{result:?}");
        assert_eq!(digest(&mut target_client).await, before, "the target is untouched");
    }

    std::fs::write(&path, &data).unwrap();
    let phases = Mutex::new(Vec::new());
    let record = |phase: &'static str| phases.lock().unwrap().push(phase);
    let last = Mutex::new((0, 0, 0));
    let report = |bytes, items, total| *last.lock().unwrap() = (bytes, items, total);
    let loaded = RedisEngine::default()
        .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &record, &report)
        .await
        .unwrap();
    assert_eq!(digest(&mut target_client).await, digest(&mut source_client).await);
    assert_eq!(phases.into_inner().unwrap(), ["verifying", "connecting", "replicating"]);
    assert_eq!(loaded.method, "replication");
    let (bytes, items, total) = last.into_inner().unwrap();
    assert_eq!((items, total), (loaded.items, loaded.items));
    assert!(bytes > 0 && bytes <= data.len() as u64);
}

#[tokio::test]
async fn keys_over_the_payload_limit_load_in_element_batches_with_the_same_data() {
    let source = RedisServer::start(&["--rdbcompression", "no"]).await;
    let mut client = source.client("").await;
    let members: Vec<String> = (0..1000).map(|index| format!("member-{index}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let scored: Vec<String> =
        (0..1000).flat_map(|index| [format!("{}.5", index), format!("m{index}")]).collect();
    let scored: Vec<&str> = scored.iter().map(String::as_str).collect();
    let hashed: Vec<String> =
        (0..1000).flat_map(|index| [format!("f{index}"), format!("v{index}")]).collect();
    let hashed: Vec<&str> = hashed.iter().map(String::as_str).collect();
    run_text(&mut client, &[&["RPUSH", "big-list"], &members[..]].concat()).await;
    run_text(&mut client, &[&["SADD", "big-set"], &members[..]].concat()).await;
    run_text(&mut client, &[&["ZADD", "big-zset"], &scored[..]].concat()).await;
    run_text(&mut client, &[&["HSET", "big-hash"], &hashed[..]].concat()).await;
    run_text(&mut client, &["SET", "big-string", &"abcdefghij".repeat(5000), "EX", "3600"]).await;
    run_text(&mut client, &["SET", "small", "fits in one payload"]).await;
    // Saved LZF-compressed (to far less than its 3 MiB), and streamed out in pieces.
    let compressible: String = (0..300_000).map(|index| format!("{:09} ", index % 4099)).collect();
    run_text(&mut client, &["CONFIG", "SET", "rdbcompression", "yes"]).await;
    run_text(&mut client, &["SET", "big-compressed", &compressible]).await;
    // A stream of 5000 entries, some deleted, with a group and pending entries.
    for index in 1..=5000 {
        let id = format!("1000-{index}");
        run_text(&mut client, &["XADD", "big-stream", &id, "field", &format!("value {index}"), "n", "1"])
            .await;
    }
    run_text(&mut client, &["XDEL", "big-stream", "1000-4000", "1000-4001", "1000-5000"]).await;
    run_text(&mut client, &["XGROUP", "CREATE", "big-stream", "readers", "0"]).await;
    let read = ["XREADGROUP", "GROUP", "readers", "alice", "COUNT", "1500", "STREAMS", "big-stream", ">"];
    run_text(&mut client, &read).await;
    let (snapshot, _) = snapshot(&source.uri("")).await;
    let data = read_body(&mut snapshot.unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.rdb");
    std::fs::write(&path, &data).unwrap();

    // A tiny limit: every big value goes in batches of elements, with its TTL after.
    let engine = RedisEngine::default().with_max_payload(300);
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    let loaded = engine
        .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &|_| {}, &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(loaded.items, 8);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(digest(&mut target_client).await, digest(&mut client).await);
    assert_eq!(
        stream_info(&mut target_client, "big-stream").await,
        stream_info(&mut client, "big-stream").await
    );
    let Reply::Integer(ttl) = run_text(&mut target_client, &["TTL", "big-string"]).await else {
        panic!("TTL")
    };
    assert!((3590..=3600).contains(&ttl), "the expiry follows the batches: {ttl}");
}
