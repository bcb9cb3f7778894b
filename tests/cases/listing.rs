//! Listing 120 backups: every page of 7 without duplicates or gaps and with the total,
//! filters (state and labels, database, creation time, size, has-label), orders
//! (`name desc`, `create_time desc`, the default), page tokens tied to their query,
//! UpdateBackup; and filters and orders of databases and destinations.

use std::collections::{HashMap, HashSet};

use tonic::Code;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, TestServer, assert_code, assert_invalid, backup_state, blocking,
    pb, redis::free_port, redis_database,
};

const ROUNDS: usize = 15;
const REAL: usize = 4;
const DEAD: usize = 4;

/// Lists every backup matching `filter` in `order_by`, `page_size` at a time, checking
/// each page's size and total.
async fn walk(server: &TestServer, page_size: i32, filter: &str, order_by: &str) -> Vec<pb::Backup> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    let mut total = None;
    loop {
        let request = pb::ListBackupsRequest {
            page_size,
            page_token: page_token.clone(),
            filter: filter.to_owned(),
            order_by: order_by.to_owned(),
        };
        let page = server.backups().list_backups(request).await.unwrap().into_inner();
        assert!(
            page.backups.len() <= page_size as usize,
            "a page of {} for page_size {page_size}",
            page.backups.len()
        );
        assert_eq!(
            *total.get_or_insert(page.total_size),
            page.total_size,
            "total_size changed between pages"
        );
        all.extend(page.backups);
        if page.next_page_token.is_empty() {
            assert_eq!(
                all.len(),
                page.total_size as usize,
                "pages hold {} of total_size {}",
                all.len(),
                page.total_size
            );
            return all;
        }
        assert!(all.len() < 10_000, "endless pages");
        page_token = page.next_page_token;
    }
}

fn ids(backups: &[pb::Backup]) -> Vec<String> {
    backups.iter().map(|backup| backup.id.clone()).collect()
}

fn time_key(time: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let time = time.as_ref().expect("timestamp set");
    (time.seconds, time.nanos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_twenty_backups_page_filter_and_order() {
    let source = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| source.call(&["DEBUG", "POPULATE", "50", "key", "16"]));
    let server = TestServer::start().await;
    let mut databases = Vec::new();
    for index in 0..REAL {
        databases.push(server.register_redis(&format!("real-{index}"), &source).await);
    }
    for index in 0..DEAD {
        let uri = format!("redis://127.0.0.1:{}", free_port());
        databases.push(server.register(redis_database(&format!("dead-{index}"), &uri)).await);
    }

    // 15 rounds of one backup per database: 60 READY, 60 FAILED; labels batch=a on even
    // rounds. A time mark splits the rounds in two.
    let mut created_ids = HashSet::new();
    let mut mark = None;
    for round in 0..ROUNDS {
        if round == 8 {
            mark = Some(chrono::Utc::now());
        }
        let batch = if round % 2 == 0 { "a" } else { "b" };
        let mut operations = Vec::new();
        for database in &databases {
            let request = pb::CreateBackupRequest {
                database_id: database.id.clone(),
                name: format!("b-{round:02}-{}", database.name),
                labels: HashMap::from([
                    ("batch".to_owned(), batch.to_owned()),
                    ("round".to_owned(), round.to_string()),
                ]),
                ..Default::default()
            };
            operations.push(server.start_backup(request).await);
        }
        for operation in operations {
            let done = server.wait_done(&operation.name).await;
            created_ids.insert(done.meta().backup_id.clone());
        }
    }
    assert_eq!(created_ids.len(), ROUNDS * (REAL + DEAD));
    let mark = mark.unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    // Every page of 7, default order (newest first): no duplicates, no gaps.
    let all = walk(&server, 7, "", "").await;
    assert_eq!(all.len(), 120);
    let listed: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(listed.len(), 120, "duplicates across pages");
    assert_eq!(listed, created_ids, "pages missed backups");
    for pair in all.windows(2) {
        assert!(
            time_key(&pair[0].create_time) >= time_key(&pair[1].create_time),
            "default order is create_time desc"
        );
    }
    let ready = all.iter().filter(|backup| backup_state(backup) == pb::BackupState::Ready).count();
    assert_eq!(ready, ROUNDS * REAL);

    // One big page holds the same, in the same order.
    assert_eq!(ids(&walk(&server, 1000, "", "").await), ids(&all));

    // name desc: exactly the names sorted descending.
    let by_name = walk(&server, 7, "", "name desc").await;
    let mut expected: Vec<String> = all.iter().map(|backup| backup.name.clone()).collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(by_name.iter().map(|backup| backup.name.clone()).collect::<Vec<_>>(), expected);

    // create_time desc, explicitly.
    let newest_first = walk(&server, 7, "", "create_time desc").await;
    assert_eq!(ids(&newest_first), ids(&all));
    let oldest_first = walk(&server, 9, "", "create_time asc").await;
    for pair in oldest_first.windows(2) {
        assert!(time_key(&pair[0].create_time) <= time_key(&pair[1].create_time));
    }

    // Filters.
    let ready_a = walk(&server, 7, "state = BACKUP_STATE_READY AND labels.batch = \"a\"", "").await;
    assert_eq!(ready_a.len(), REAL * ROUNDS.div_ceil(2));
    assert!(
        ready_a
            .iter()
            .all(|backup| backup_state(backup) == pb::BackupState::Ready && backup.labels["batch"] == "a")
    );
    let short_names = walk(&server, 50, "state = READY AND labels.batch = a", "").await;
    assert_eq!(ids(&short_names), ids(&ready_a), "short enum names and bare words work the same");
    let failed = walk(&server, 50, "state = BACKUP_STATE_FAILED", "").await;
    assert_eq!(failed.len(), ROUNDS * DEAD);
    let one_database = walk(&server, 7, &format!("database_id = \"{}\"", databases[0].id), "").await;
    assert_eq!(one_database.len(), ROUNDS);
    assert!(one_database.iter().all(|backup| backup.database_id == databases[0].id));
    let later = walk(&server, 7, &format!("create_time > {mark}"), "").await;
    assert_eq!(later.len(), (ROUNDS - 8) * (REAL + DEAD), "backups after the mark ({mark})");
    let quoted_time = walk(&server, 7, &format!("create_time > \"{mark}\""), "").await;
    assert_eq!(ids(&quoted_time), ids(&later));
    let earlier = walk(&server, 7, &format!("create_time < {mark}"), "").await;
    assert_eq!(earlier.len() + later.len(), 120);
    let sized = walk(&server, 50, "size_bytes > 0", "").await;
    assert_eq!(sized.len(), ROUNDS * REAL);
    let named = walk(&server, 50, "name:real-1", "").await;
    assert_eq!(named.len(), ROUNDS, "has-substring on name");
    let instance = walk(&server, 50, "instance_name = dead-2", "").await;
    assert_eq!(instance.len(), ROUNDS);
    let labelled = walk(&server, 50, "labels:round AND labels.round = \"3\"", "").await;
    assert_eq!(labelled.len(), REAL + DEAD);
    let none = walk(&server, 7, "labels.batch = \"c\"", "").await;
    assert!(none.is_empty());

    // A page token is tied to the query that issued it.
    let request =
        pb::ListBackupsRequest { page_size: 7, filter: "state = READY".into(), ..Default::default() };
    let first = server.backups().list_backups(request).await.unwrap().into_inner();
    assert_eq!(first.total_size as usize, ROUNDS * REAL);
    let changed_filter = pb::ListBackupsRequest {
        page_size: 7,
        page_token: first.next_page_token.clone(),
        filter: "state = FAILED".into(),
        ..Default::default()
    };
    assert_invalid(server.backups().list_backups(changed_filter).await, "page_token");
    let changed_order = pb::ListBackupsRequest {
        page_size: 7,
        page_token: first.next_page_token.clone(),
        filter: "state = READY".into(),
        order_by: "name".into(),
    };
    assert_invalid(server.backups().list_backups(changed_order).await, "page_token");
    let same = pb::ListBackupsRequest {
        page_size: 7,
        page_token: first.next_page_token,
        filter: "state = READY".into(),
        ..Default::default()
    };
    let second = server.backups().list_backups(same).await.expect("the same query takes the token");
    assert_eq!(second.into_inner().backups.len(), 7);

    // UpdateBackup: rename and relabel; the filters see it.
    let target = ready_a[0].clone();
    let change = pb::Backup {
        id: target.id.clone(),
        name: "kept for audit".into(),
        labels: HashMap::from([("batch".to_owned(), "audit".to_owned())]),
        ..Default::default()
    };
    let request = pb::UpdateBackupRequest {
        backup: Some(change),
        update_mask: Some(prost_types::FieldMask { paths: vec!["name".into(), "labels".into()] }),
    };
    let updated = server.backups().update_backup(request).await.unwrap().into_inner();
    assert_eq!(updated.name, "kept for audit");
    assert_eq!(updated.labels, HashMap::from([("batch".to_owned(), "audit".to_owned())]));
    assert_eq!(updated.sha256, target.sha256, "only name, expire_time and labels change");
    assert_eq!(backup_state(&updated), pb::BackupState::Ready);
    let audit = walk(&server, 7, "labels.batch = audit", "").await;
    assert_eq!(ids(&audit), vec![target.id.clone()]);
    assert_eq!(walk(&server, 7, "state = READY AND labels.batch = a", "").await.len(), ready_a.len() - 1);

    // An expiry in the future is set, then cleared.
    let future = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 86_400, nanos: 0 };
    let request = pb::UpdateBackupRequest {
        backup: Some(pb::Backup { id: target.id.clone(), expire_time: Some(future), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["expire_time".into()] }),
    };
    let expiring = server.backups().update_backup(request).await.unwrap().into_inner();
    assert_eq!(expiring.expire_time, Some(future));
    let expiring_list = walk(&server, 7, "expire_time > 2000-01-01T00:00:00Z", "").await;
    assert_eq!(ids(&expiring_list), vec![target.id.clone()]);
    let request = pb::UpdateBackupRequest {
        backup: Some(pb::Backup { id: target.id.clone(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["expire_time".into()] }),
    };
    let cleared = server.backups().update_backup(request).await.unwrap().into_inner();
    assert_eq!(cleared.expire_time, None);

    // Databases: filters and order.
    let request = pb::ListDatabasesRequest { order_by: "name desc".into(), ..Default::default() };
    let by_name = server.databases().list_databases(request).await.unwrap().into_inner();
    let names: Vec<&str> = by_name.databases.iter().map(|database| database.name.as_str()).collect();
    assert_eq!(names, ["real-3", "real-2", "real-1", "real-0", "dead-3", "dead-2", "dead-1", "dead-0"]);
    let request = pb::ListDatabasesRequest {
        filter: "name:dead AND engine = ENGINE_REDIS".into(),
        page_size: 3,
        ..Default::default()
    };
    let dead = server.databases().list_databases(request).await.unwrap().into_inner();
    assert_eq!((dead.total_size, dead.databases.len()), (4, 3));
    assert!(!dead.next_page_token.is_empty());
    let request =
        pb::ListDatabasesRequest { filter: "engine = ENGINE_POSTGRES".into(), ..Default::default() };
    assert_eq!(server.databases().list_databases(request).await.unwrap().into_inner().total_size, 0);
    let request = pb::ListDatabasesRequest { filter: "project_id = default".into(), ..Default::default() };
    assert_eq!(server.databases().list_databases(request).await.unwrap().into_inner().total_size, 8);

    // Deleting a database keeps its backups.
    let request = pb::DeleteDatabaseRequest { id: databases[7].id.clone() };
    server.databases().delete_database(request).await.unwrap();
    let orphans = walk(&server, 50, &format!("database_id = \"{}\"", databases[7].id), "").await;
    assert_eq!(orphans.len(), ROUNDS);
    assert!(orphans.iter().all(|backup| backup.instance_name == "dead-3"));
    let request = pb::CreateBackupRequest { database_id: databases[7].id.clone(), ..Default::default() };
    assert_code(server.backups().create_backup(request).await, Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_filter_and_order() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    for (name, tier) in [("alpha", "hot"), ("bravo", "cold"), ("charlie", "cold")] {
        let destination = pb::Destination {
            name: name.into(),
            uri: crate::support::files::uri_of_dir(&root.path().join(name)),
            labels: HashMap::from([("tier".to_owned(), tier.to_owned())]),
            ..Default::default()
        };
        let request =
            pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() };
        server.destinations().create_destination(request).await.unwrap();
    }
    let list = |filter: &str, order_by: &str, page_size: i32| {
        let request = pb::ListDestinationsRequest {
            filter: filter.into(),
            order_by: order_by.into(),
            page_size,
            page_token: String::new(),
        };
        let mut client = server.destinations();
        async move { client.list_destinations(request).await.unwrap().into_inner() }
    };
    let names = |response: &pb::ListDestinationsResponse| {
        response.destinations.iter().map(|destination| destination.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&list("", "name", 0).await), ["alpha", "bravo", "charlie", "local"]);
    assert_eq!(names(&list("", "name desc", 0).await), ["local", "charlie", "bravo", "alpha"]);
    assert_eq!(
        names(&list("", "", 0).await),
        ["charlie", "bravo", "alpha", "local"],
        "newest first by default"
    );
    assert_eq!(names(&list("labels.tier = cold", "name", 0).await), ["bravo", "charlie"]);
    assert_eq!(names(&list("labels:tier", "name", 0).await), ["alpha", "bravo", "charlie"]);
    assert_eq!(names(&list("name != local AND labels.tier != cold", "", 0).await), ["alpha"]);
    let paged = list("", "name", 2).await;
    assert_eq!((names(&paged), paged.total_size), (vec!["alpha".to_owned(), "bravo".to_owned()], 4));
    let request = pb::ListDestinationsRequest {
        order_by: "name".into(),
        page_size: 2,
        page_token: paged.next_page_token,
        filter: String::new(),
    };
    let rest = server.destinations().list_destinations(request).await.unwrap().into_inner();
    assert_eq!(names(&rest), ["charlie", "local"]);
    assert_eq!(rest.next_page_token, "");
}
