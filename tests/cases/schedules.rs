//! Scheduled backups, retention and expiry against a real redis-server: an `@every 2s`
//! schedule takes backups, `keep_last = 3` keeps exactly three, the newest is never
//! deleted, clearing the schedule stops it at once, and a backup past its expiry is
//! swept with its objects gone from the store.

use std::time::Duration;

use crate::support::{
    OperationExt, PATIENCE, RedisOptions, RedisServer, TestServer, blocking, pb, poll, redis_database,
};

/// Every backup of a database (all pages are one here).
async fn backups_of(server: &TestServer, database_id: &str) -> Vec<pb::Backup> {
    let request = pb::ListBackupsRequest {
        page_size: 1000,
        filter: format!("database_id = \"{database_id}\""),
        ..Default::default()
    };
    server.backups().list_backups(request).await.expect("ListBackups").into_inner().backups
}

fn scheduled(backup: &pb::Backup) -> bool {
    backup.origin == pb::BackupOrigin::Scheduled as i32
}

fn ready(backup: &pb::Backup) -> bool {
    backup.state == pb::BackupState::Ready as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_takes_backups_and_retention_keeps_the_last_three() {
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.call(&["SET", "greeting", "hello"]);
        source
    });
    let mut database = redis_database("scheduled", &source.uri());
    database.backup_policy = Some(pb::BackupPolicy {
        schedule: "@every 2s".to_owned(),
        retention: Some(pb::RetentionPolicy { keep_last: 3, ..Default::default() }),
        ..Default::default()
    });
    let database = server.register(database).await;
    let next = database.next_backup_time.expect("the next run is shown").seconds;
    let now = chrono::Utc::now().timestamp();
    assert!((now..=now + 3).contains(&next), "next run {next}, now {now}");

    // Five scheduled backups taken, and retention down to three READY ones after each.
    let taken = poll("five scheduled backups", Duration::from_secs(60), || async {
        let operations = server.all_operations(&format!("database_id = \"{}\"", database.id)).await;
        let backups: Vec<_> = operations
            .iter()
            .filter(|operation| operation.meta().kind == pb::OperationKind::Backup as i32)
            .filter(|operation| operation.state() == pb::OperationState::Succeeded)
            .filter_map(|operation| operation.response_backup().cloned())
            .collect();
        (backups.len() >= 5).then_some(backups)
    })
    .await;
    assert!(taken.iter().all(scheduled), "the schedule's backups say so: {taken:?}");

    // Clearing the schedule stops it without a restart.
    let mut cleared = database.clone();
    cleared.backup_policy =
        Some(pb::BackupPolicy { schedule: String::new(), ..cleared.backup_policy.unwrap() });
    let request = pb::UpdateDatabaseRequest {
        database: Some(cleared),
        update_mask: Some(prost_types::FieldMask { paths: vec!["backup_policy.schedule".to_owned()] }),
    };
    let updated = server.databases().update_database(request).await.expect("UpdateDatabase").into_inner();
    assert_eq!(updated.next_backup_time, None, "no schedule, no next run");

    let kept = poll("retention to leave three READY backups", PATIENCE, || async {
        let backups = backups_of(&server, &database.id).await;
        let settled = backups.iter().all(ready) && backups.len() == 3;
        settled.then_some(backups)
    })
    .await;
    let newest_taken = taken.iter().map(|backup| backup.create_time.unwrap().seconds).max().unwrap();
    let newest_kept = kept.iter().map(|backup| backup.create_time.unwrap().seconds).max().unwrap();
    assert!(newest_kept >= newest_taken, "the newest backup is never deleted");
    for backup in taken.iter().filter(|backup| !kept.iter().any(|kept| kept.id == backup.id)) {
        let object = server.local_backups_dir().join(&backup.object_key);
        assert!(!object.exists(), "a pruned backup's object is gone: {}", object.display());
    }

    // Nothing more is scheduled.
    let count = server.all_operations(&format!("database_id = \"{}\"", database.id)).await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = server.all_operations(&format!("database_id = \"{}\"", database.id)).await;
    let new_backups = after.len() - count;
    assert_eq!(new_backups, 0, "no backup after the schedule was cleared: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_backup_is_swept_but_never_the_newest() {
    let server = TestServer::start().await;
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let database = server.register_redis("expiring", &source).await;
    // Far enough ahead that a busy machine still asks before it passes.
    let soon = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 5, nanos: 0 };

    let backup = |expire_time: Option<prost_types::Timestamp>| {
        let server = &server;
        let database_id = database.id.clone();
        async move {
            let request = pb::CreateBackupRequest { database_id, expire_time, ..Default::default() };
            let created = server.start_backup(request).await;
            let done = server.wait_done(&created.name).await;
            assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
            done.response_backup().expect("the backup").clone()
        }
    };
    // The only backup, expiring: kept while it is the newest READY one.
    let lonely = backup(Some(soon)).await;
    let until_expired = soon.seconds + 1 - chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs(until_expired.max(0) as u64)).await;
    assert!(ready(&server.backup(&lonely.id).await), "the newest READY backup is never swept");

    // Once a newer one exists, the expired one goes, objects and all.
    let newer = backup(None).await;
    poll("the expired backup to be swept", PATIENCE, || async {
        let ids: Vec<String> =
            backups_of(&server, &database.id).await.into_iter().map(|backup| backup.id).collect();
        (ids == [newer.id.clone()]).then_some(())
    })
    .await;
    let object = server.local_backups_dir().join(&lonely.object_key);
    assert!(!object.exists(), "the swept backup's object is gone: {}", object.display());
    let manifest = object.with_file_name("manifest.json");
    assert!(!manifest.exists(), "and its manifest: {}", manifest.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_plan_shows_what_would_be_deleted_and_deletes_nothing() {
    let server = TestServer::start().await;
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let mut database = redis_database("planned", &source.uri());
    database.backup_policy =
        Some(pb::BackupPolicy { schedule: "@every 1s".to_owned(), ..Default::default() });
    let database = server.register(database).await;
    let operations = || async {
        let filter = format!("database_id = \"{}\" AND kind = OPERATION_KIND_BACKUP", database.id);
        server.all_operations(&filter).await
    };
    poll("three scheduled backups", Duration::from_secs(60), || async {
        let done = operations().await.iter().filter(|op| op.state() == pb::OperationState::Succeeded).count();
        (done >= 3).then_some(())
    })
    .await;

    // Stop the schedule and ask for one backup kept: not applied until the next
    // scheduled backup, so the plan shows what it would delete.
    let mut changed = database.clone();
    changed.backup_policy = Some(pb::BackupPolicy {
        schedule: String::new(),
        retention: Some(pb::RetentionPolicy { keep_last: 1, ..Default::default() }),
        ..Default::default()
    });
    let request = pb::UpdateDatabaseRequest {
        database: Some(changed),
        update_mask: Some(prost_types::FieldMask { paths: vec!["backup_policy".to_owned()] }),
    };
    server.databases().update_database(request).await.expect("UpdateDatabase");
    let backups = poll("every backup to settle", PATIENCE, || async {
        let all_done = operations().await.iter().all(|op| op.done);
        let backups = backups_of(&server, &database.id).await;
        (all_done && backups.iter().all(ready)).then_some(backups)
    })
    .await;
    let newest = backups.iter().max_by_key(|backup| backup.create_time.unwrap().seconds).unwrap().clone();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(["retention-plan", "--database", "planned", "--data-dir"])
        .arg(server.data_dir())
        .env("CELLAR_CATALOG_KEY", crate::support::TEST_CATALOG_KEY)
        .output()
        .expect("run cellar retention-plan");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.starts_with("database planned ("), "{text}");
    assert!(text.contains("no schedule"), "{text}");
    let doomed: Vec<&str> = text.lines().filter(|line| line.contains("would delete")).collect();
    assert_eq!(doomed.len(), backups.len() - 1, "{text}");
    assert!(!text.contains(&format!("would delete {}", newest.id)), "the newest is kept: {text}");
    for backup in backups.iter().filter(|backup| backup.id != newest.id) {
        assert!(text.contains(&format!("would delete {} ", backup.id)), "{} in {text}", backup.id);
    }
    assert_eq!(backups_of(&server, &database.id).await.len(), backups.len(), "nothing was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_finds_the_database_busy_waits_its_turn() {
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::disk());
        // About 3 s per snapshot: an on-demand backup keeps the database busy.
        source.load_slow_dataset(3000, 16, 1000);
        source
    });
    let database = server.register_redis("busy", &source).await;
    // The database is busy from the moment the backup is accepted.
    let manual = server.start_backup(crate::support::backup_of(&database.id)).await;

    // A schedule set meanwhile: its runs find the database busy until the backup ends.
    let mut scheduled_policy = database.clone();
    scheduled_policy.backup_policy =
        Some(pb::BackupPolicy { schedule: "@every 1s".to_owned(), ..Default::default() });
    let request = pb::UpdateDatabaseRequest {
        database: Some(scheduled_policy),
        update_mask: Some(prost_types::FieldMask { paths: vec!["backup_policy.schedule".to_owned()] }),
    };
    server.databases().update_database(request).await.expect("UpdateDatabase");
    let manual_done = server.wait_done(&manual.name).await;
    assert_eq!(manual_done.state(), pb::OperationState::Succeeded, "{manual_done:?}");
    blocking(|| source.speed_up_snapshots());

    // Not lost: a scheduled backup follows as soon as the database is free.
    let ended = manual_done.meta().end_time.expect("an end time").seconds;
    poll("a scheduled backup after the busy spell", Duration::from_secs(30), || async {
        let backups = backups_of(&server, &database.id).await;
        backups
            .iter()
            .any(|backup| scheduled(backup) && backup.create_time.unwrap().seconds >= ended - 1)
            .then_some(())
    })
    .await;
}
