//! Suite checks of create, read, update and delete for each resource, request-id
//! idempotency, unique names and the atomicity of `create_operation`.

use super::{Run, SECRET, assert_already_exists, assert_not_found, labels, time};
use crate::domain::{
    BackupId, BackupPolicy, BackupState, Compression, ConnectionUri, DatabaseId, DestinationId, EngineKind,
    ExportResult, ImportResult, Operation, OperationId, OperationKind, OperationResult, OperationState,
    RestoreResult, Secret, Webhook,
};
use crate::metadata::{Created, Store};

/// Databases: exact round trip, NotFound, updates, unique names, deletion.
pub(crate) async fn databases(store: &dyn Store) {
    let run = Run::new();
    let database = run.database("orders");
    assert_eq!(store.create_database(&database, None).await.unwrap(), Created::New);
    assert_eq!(store.get_database(database.id).await.unwrap(), database);

    // The smallest database: every optional field empty.
    let mut minimal = run.database("minimal");
    minimal.backup_policy = BackupPolicy::default();
    minimal.labels.clear();
    minimal.webhook = None;
    minimal.connection_uri = ConnectionUri::parse("redis://cache.internal:6379").unwrap();
    minimal.engine = EngineKind::Redis;
    store.create_database(&minimal, None).await.unwrap();
    assert_eq!(store.get_database(minimal.id).await.unwrap(), minimal);

    let unknown = DatabaseId::new();
    assert_not_found(store.get_database(unknown).await, "database", unknown);

    // An update replaces every field but the id.
    let mut changed = database.clone();
    changed.name = run.name("orders-renamed");
    changed.project_id = format!("{}-moved", run.project());
    changed.engine = EngineKind::Mysql;
    changed.connection_uri =
        ConnectionUri::parse(&format!("mysql://root:{SECRET}x@mysql:3306/shop")).unwrap();
    changed.backup_policy.destination_id = None;
    changed.backup_policy.schedule = "@every 6h".to_owned();
    changed.backup_policy.compression = Compression::None;
    changed.backup_policy.retention.keep_daily = 30;
    changed.backup_policy.backup_ttl = None;
    changed.labels = labels(&[("env", "staging"), ("owner", "team \"a\"")]);
    changed.webhook = Some(Webhook {
        url: Webhook::parse_url("http://10.0.0.7:8080/hooks/cellar").unwrap(),
        secret: Secret::new(format!("rotated-{SECRET}")),
    });
    changed.update_time = time("2026-06-07T08:09:10.111213Z");
    store.update_database(&changed).await.unwrap();
    assert_eq!(store.get_database(changed.id).await.unwrap(), changed);
    // A webhook can be removed, and set again.
    let mut unhooked = changed.clone();
    unhooked.webhook = None;
    store.update_database(&unhooked).await.unwrap();
    assert_eq!(store.get_database(changed.id).await.unwrap(), unhooked);
    store.update_database(&changed).await.unwrap();
    assert_eq!(store.get_database(changed.id).await.unwrap(), changed);
    let mut ghost = changed.clone();
    ghost.id = unknown;
    ghost.name = run.name("ghost");
    assert_not_found(store.update_database(&ghost).await, "database", unknown);

    // Names are unique, on create and on update; the losing write changes nothing.
    let mut twin = run.database("twin");
    twin.name = changed.name.clone();
    let clash = store.create_database(&twin, None).await;
    assert_already_exists(clash, "database", "name", changed.name.as_str());
    assert_not_found(store.get_database(twin.id).await, "database", twin.id);
    let mut renamed = minimal.clone();
    renamed.name = changed.name.clone();
    let clash = store.update_database(&renamed).await;
    assert_already_exists(clash, "database", "name", changed.name.as_str());
    assert_eq!(store.get_database(minimal.id).await.unwrap(), minimal);

    // An existing id is refused too.
    let mut same_id = run.database("same-id");
    same_id.id = database.id;
    let clash = store.create_database(&same_id, None).await;
    assert_already_exists(clash, "database", "id", &database.id.to_string());

    store.delete_database(changed.id).await.unwrap();
    assert_not_found(store.get_database(changed.id).await, "database", changed.id);
    assert_not_found(store.delete_database(changed.id).await, "database", changed.id);
    // A deleted database's name is free again.
    assert_eq!(store.create_database(&twin, None).await.unwrap(), Created::New);
}

/// A create with a used request id returns the first database and inserts nothing; a
/// failed create does not use up its request id.
pub(crate) async fn database_request_ids(store: &dyn Store) {
    let run = Run::new();
    let request_id = run.request_id("create-orders");
    let first = run.database("first");
    assert_eq!(store.create_database(&first, Some(&request_id)).await.unwrap(), Created::New);

    // A retry: same name, new id (the server assigns one per attempt).
    let mut retry = first.clone();
    retry.id = DatabaseId::new();
    let existing = Created::Existing(first.id.to_string());
    assert_eq!(store.create_database(&retry, Some(&request_id)).await.unwrap(), existing);
    // Whatever the body, the request id decides.
    let other = run.database("other");
    assert_eq!(store.create_database(&other, Some(&request_id)).await.unwrap(), existing);
    assert_not_found(store.get_database(retry.id).await, "database", retry.id);
    assert_not_found(store.get_database(other.id).await, "database", other.id);
    assert_eq!(store.get_database(first.id).await.unwrap(), first);

    // Another request id creates; no request id never collides.
    assert_eq!(
        store.create_database(&other, Some(&run.request_id("create-other"))).await.unwrap(),
        Created::New
    );
    assert_eq!(store.create_database(&run.database("plain-1"), None).await.unwrap(), Created::New);
    assert_eq!(store.create_database(&run.database("plain-2"), None).await.unwrap(), Created::New);

    // A create that fails (name taken) leaves its request id unused.
    let later_request = run.request_id("create-later");
    let mut taken = run.database("taken");
    taken.name = first.name.clone();
    let clash = store.create_database(&taken, Some(&later_request)).await;
    assert_already_exists(clash, "database", "name", first.name.as_str());
    let later = run.database("later");
    assert_eq!(store.create_database(&later, Some(&later_request)).await.unwrap(), Created::New);

    // Request ids are per kind: a destination may reuse a database's.
    let destination = run.destination("same-request");
    assert_eq!(store.create_destination(&destination, Some(&request_id)).await.unwrap(), Created::New);

    // An update keeps the database's request id.
    let mut updated = first.clone();
    updated.backup_policy.schedule = "@every 1h".to_owned();
    store.update_database(&updated).await.unwrap();
    assert_eq!(store.create_database(&retry, Some(&request_id)).await.unwrap(), existing);
}

/// Destinations: exact round trip (credentials included), lookup by name, NotFound,
/// updates, unique names, deletion; no error shows a credential.
pub(crate) async fn destinations(store: &dyn Store) {
    let run = Run::new();
    let destination = run.destination("s3");
    assert_eq!(store.create_destination(&destination, None).await.unwrap(), Created::New);
    assert_eq!(store.get_destination(destination.id).await.unwrap(), destination);
    let found = store.find_destination_by_name(destination.name.as_str()).await.unwrap();
    assert_eq!(found, Some(destination.clone()));
    let missing = run.name("missing");
    assert_eq!(store.find_destination_by_name(missing.as_str()).await.unwrap(), None);

    let mut minimal = run.destination("bare");
    minimal.uri = "file:///var/lib/cellar/backups".to_owned();
    minimal.credentials.clear();
    minimal.options.clear();
    minimal.labels.clear();
    store.create_destination(&minimal, None).await.unwrap();
    assert_eq!(store.get_destination(minimal.id).await.unwrap(), minimal);

    let unknown = DestinationId::new();
    assert_not_found(store.get_destination(unknown).await, "destination", unknown);

    let mut changed = destination.clone();
    changed.name = run.name("s3-renamed");
    changed.uri = "s3://other-bucket/prefix".to_owned();
    changed.credentials.insert("session_token".to_owned(), Secret::new(format!("{SECRET}-token")));
    changed.credentials.remove("access_key_id");
    changed.options = labels(&[("region", "eu-west-3")]);
    changed.labels.insert("quote\"d".to_owned(), "it's".to_owned());
    changed.update_time = time("2026-06-07T08:09:10.000001Z");
    store.update_destination(&changed).await.unwrap();
    assert_eq!(store.get_destination(changed.id).await.unwrap(), changed);
    assert_eq!(store.find_destination_by_name(destination.name.as_str()).await.unwrap(), None);
    let mut ghost = changed.clone();
    ghost.id = unknown;
    ghost.name = run.name("ghost");
    assert_not_found(store.update_destination(&ghost).await, "destination", unknown);

    let mut twin = run.destination("twin");
    twin.name = changed.name.clone();
    let clash = store.create_destination(&twin, None).await;
    assert_already_exists(clash, "destination", "name", changed.name.as_str());
    let mut renamed = minimal.clone();
    renamed.name = changed.name.clone();
    let clash = store.update_destination(&renamed).await;
    assert_already_exists(clash, "destination", "name", changed.name.as_str());
    assert_eq!(store.get_destination(minimal.id).await.unwrap(), minimal);

    store.delete_destination(changed.id).await.unwrap();
    assert_not_found(store.get_destination(changed.id).await, "destination", changed.id);
    assert_not_found(store.delete_destination(changed.id).await, "destination", changed.id);
    assert_eq!(store.create_destination(&twin, None).await.unwrap(), Created::New);
}

/// Destination creates honour request ids like database creates.
pub(crate) async fn destination_request_ids(store: &dyn Store) {
    let run = Run::new();
    let request_id = run.request_id("create-s3");
    let first = run.destination("first");
    assert_eq!(store.create_destination(&first, Some(&request_id)).await.unwrap(), Created::New);
    let mut retry = first.clone();
    retry.id = DestinationId::new();
    let existing = Created::Existing(first.id.to_string());
    assert_eq!(store.create_destination(&retry, Some(&request_id)).await.unwrap(), existing);
    assert_not_found(store.get_destination(retry.id).await, "destination", retry.id);

    let later_request = run.request_id("create-later");
    let clash = store.create_destination(&retry, Some(&later_request)).await;
    assert_already_exists(clash, "destination", "name", first.name.as_str());
    let later = run.destination("later");
    assert_eq!(store.create_destination(&later, Some(&later_request)).await.unwrap(), Created::New);
    assert_eq!(store.create_database(&run.database("db"), Some(&request_id)).await.unwrap(), Created::New);
}

/// A destination is in use while a database's policy or a backup names it.
pub(crate) async fn destination_in_use(store: &dyn Store) {
    let run = Run::new();
    let destination = run.destination("in-use");
    store.create_destination(&destination, None).await.unwrap();
    assert!(!store.destination_in_use(destination.id).await.unwrap());
    assert!(!store.destination_in_use(DestinationId::new()).await.unwrap());

    let mut database = run.database("uses-it");
    database.backup_policy.destination_id = Some(destination.id);
    store.create_database(&database, None).await.unwrap();
    assert!(store.destination_in_use(destination.id).await.unwrap());
    database.backup_policy.destination_id = None;
    store.update_database(&database).await.unwrap();
    assert!(!store.destination_in_use(destination.id).await.unwrap());

    let mut backup = run.backup("on it");
    backup.destination_id = destination.id;
    store.create_backup(&backup).await.unwrap();
    assert!(store.destination_in_use(destination.id).await.unwrap());
    store.delete_backup(backup.id).await.unwrap();
    assert!(!store.destination_in_use(destination.id).await.unwrap());

    database.backup_policy.destination_id = Some(destination.id);
    store.update_database(&database).await.unwrap();
    store.delete_database(database.id).await.unwrap();
    assert!(!store.destination_in_use(destination.id).await.unwrap());
}

/// Backups: exact round trip (optional fields both ways), NotFound, updates, deletion.
pub(crate) async fn backups(store: &dyn Store) {
    let run = Run::new();
    let backup = run.backup("full");
    store.create_backup(&backup).await.unwrap();
    assert_eq!(store.get_backup(backup.id).await.unwrap(), backup);

    let mut imported = run.backup("imported");
    imported.database_id = None;
    imported.expire_time = None;
    imported.labels.clear();
    imported.sha256.clear();
    imported.size_bytes = 0;
    imported.logical_size_bytes = i64::MAX as u64;
    store.create_backup(&imported).await.unwrap();
    assert_eq!(store.get_backup(imported.id).await.unwrap(), imported);

    let clash = store.create_backup(&imported).await;
    assert_already_exists(clash, "backup", "id", &imported.id.to_string());

    let unknown = BackupId::new();
    assert_not_found(store.get_backup(unknown).await, "backup", unknown);

    let mut changed = backup.clone();
    changed.state = BackupState::Deleting;
    changed.database_id = None;
    changed.expire_time = None;
    changed.size_bytes += 1;
    changed.labels.insert("pinned".to_owned(), "yes".to_owned());
    changed.update_time = time("2026-06-07T08:09:10.000001Z");
    store.update_backup(&changed).await.unwrap();
    assert_eq!(store.get_backup(changed.id).await.unwrap(), changed);
    imported.expire_time = Some(time("2027-01-01T00:00:00Z"));
    imported.database_id = Some(DatabaseId::new());
    store.update_backup(&imported).await.unwrap();
    assert_eq!(store.get_backup(imported.id).await.unwrap(), imported);
    let mut ghost = changed.clone();
    ghost.id = unknown;
    assert_not_found(store.update_backup(&ghost).await, "backup", unknown);

    store.delete_backup(changed.id).await.unwrap();
    assert_not_found(store.get_backup(changed.id).await, "backup", changed.id);
    assert_not_found(store.delete_backup(changed.id).await, "backup", changed.id);
    assert_eq!(store.get_backup(imported.id).await.unwrap(), imported);
}

/// Operations: exact round trip of every field and result variant, lookup by request id,
/// NotFound, updates, deletion.
pub(crate) async fn operations(store: &dyn Store) {
    let run = Run::new();
    let finished = run.finished_operation();
    store.create_operation(&finished, None).await.unwrap();
    assert_eq!(store.get_operation(finished.id).await.unwrap(), finished);

    let database_id = Some(DatabaseId::new());
    let results = [
        OperationResult::Restore(RestoreResult {
            backup_id: Some(BackupId::new()),
            database_id,
            database_name: "orders".to_owned(),
            bytes: 1 << 40,
            items: 3,
            load_method: "replication".to_owned(),
        }),
        OperationResult::Import(ImportResult {
            database_id: None,
            backup_id: Some(BackupId::new()),
            source_uris: vec!["s3://b/one.rdb".to_owned(), "ftp://u:****@h/two.rdb".to_owned()],
            bytes: 5,
            items: 0,
            load_method: String::new(),
            database_names: vec!["orders".to_owned()],
            logical_bytes: 9,
            backup: Some(Box::new(run.backup("imported"))),
        }),
        OperationResult::Export(ExportResult {
            database_id,
            export_uri: "gs://bucket/export.sql.gz".to_owned(),
            size_bytes: 10,
            logical_size_bytes: 20,
            sha256: "cd".repeat(32),
            database_name: "orders".to_owned(),
            compression: Some(crate::domain::Compression::Gzip),
            format: "mysql_sql".to_owned(),
            items: 3,
            server_version: "10.11.6".to_owned(),
        }),
    ];
    for result in results {
        let mut operation = Operation::queued(OperationKind::Restore, database_id, None, None);
        operation.state = OperationState::Succeeded;
        operation.result = Some(result);
        store.create_operation(&operation, None).await.unwrap();
        assert_eq!(store.get_operation(operation.id).await.unwrap(), operation);
    }

    let unknown = OperationId::new();
    assert_not_found(store.get_operation(unknown).await, "operation", unknown);

    // Lookup by request id is per kind.
    let request_id = finished.request_id.clone().unwrap();
    let found = store.find_operation_by_request_id(OperationKind::Backup, &request_id).await.unwrap();
    assert_eq!(found, Some(finished.clone()));
    let other_kind = store.find_operation_by_request_id(OperationKind::Restore, &request_id).await.unwrap();
    assert_eq!(other_kind, None);
    let unknown_request = run.request_id("never-sent");
    let none = store.find_operation_by_request_id(OperationKind::Backup, &unknown_request).await.unwrap();
    assert_eq!(none, None);

    // Updates replace the whole operation, including fields going back to empty.
    let mut running = Operation::queued(OperationKind::Backup, database_id, Some(BackupId::new()), None);
    store.create_operation(&running, None).await.unwrap();
    running.state = OperationState::Running;
    running.phase = "snapshotting".to_owned();
    running.start_time = Some(time("2026-06-07T08:09:10.000001Z"));
    running.progress.bytes_done = 42;
    running.update_time = time("2026-06-07T08:09:11.000001Z");
    store.update_operation(&running).await.unwrap();
    assert_eq!(store.get_operation(running.id).await.unwrap(), running);
    let mut cleared = finished.clone();
    cleared.error = None;
    cleared.warnings.clear();
    cleared.result = None;
    cleared.end_time = None;
    cleared.state = OperationState::Cancelling;
    store.update_operation(&cleared).await.unwrap();
    assert_eq!(store.get_operation(cleared.id).await.unwrap(), cleared);
    let found = store.find_operation_by_request_id(OperationKind::Backup, &request_id).await.unwrap();
    assert_eq!(found, Some(cleared.clone()));
    let mut ghost = running.clone();
    ghost.id = unknown;
    assert_not_found(store.update_operation(&ghost).await, "operation", unknown);

    store.delete_operation(cleared.id).await.unwrap();
    assert_not_found(store.get_operation(cleared.id).await, "operation", cleared.id);
    assert_not_found(store.delete_operation(cleared.id).await, "operation", cleared.id);
    let gone = store.find_operation_by_request_id(OperationKind::Backup, &request_id).await.unwrap();
    assert_eq!(gone, None);
}

/// `create_operation` writes the operation and its backup together or not at all, and a
/// request id is used once per kind.
pub(crate) async fn operation_atomicity(store: &dyn Store) {
    let run = Run::new();
    let request_id = run.request_id("backup-now");
    let backup = run.backup("fresh");
    let operation = Operation::queued(
        OperationKind::Backup,
        backup.database_id,
        Some(backup.id),
        Some(request_id.clone()),
    );
    store.create_operation(&operation, Some(&backup)).await.unwrap();
    assert_eq!(store.get_operation(operation.id).await.unwrap(), operation);
    assert_eq!(store.get_backup(backup.id).await.unwrap(), backup);

    // A second operation of the same kind with the same request id: nothing is written.
    let second_backup = run.backup("second");
    let second =
        Operation::queued(OperationKind::Backup, None, Some(second_backup.id), Some(request_id.clone()));
    let clash = store.create_operation(&second, Some(&second_backup)).await;
    assert_already_exists(clash, "operation", "request_id", &request_id);
    assert_not_found(store.get_operation(second.id).await, "operation", second.id);
    assert_not_found(store.get_backup(second_backup.id).await, "backup", second_backup.id);
    let found = store.find_operation_by_request_id(OperationKind::Backup, &request_id).await.unwrap();
    assert_eq!(found, Some(operation.clone()));

    // The same request id with another kind is another request.
    let restore = Operation::queued(OperationKind::Restore, None, Some(backup.id), Some(request_id.clone()));
    store.create_operation(&restore, None).await.unwrap();
    let found = store.find_operation_by_request_id(OperationKind::Restore, &request_id).await.unwrap();
    assert_eq!(found, Some(restore));

    // Operations without a request id never clash.
    for _ in 0..2 {
        let plain = Operation::queued(OperationKind::Backup, None, None, None);
        store.create_operation(&plain, None).await.unwrap();
    }

    // When the backup cannot be written (its id exists), the operation is not either.
    let orphan =
        Operation::queued(OperationKind::Backup, None, Some(backup.id), Some(run.request_id("orphan")));
    let clash = store.create_operation(&orphan, Some(&backup)).await;
    assert_already_exists(clash, "backup", "id", &backup.id.to_string());
    assert_not_found(store.get_operation(orphan.id).await, "operation", orphan.id);
    let retried = run.backup("retried");
    store.create_operation(&orphan, Some(&retried)).await.unwrap();
    assert_eq!(store.get_backup(retried.id).await.unwrap(), retried);

    // An existing operation id is refused.
    let same_id = Operation { request_id: None, ..operation.clone() };
    let clash = store.create_operation(&same_id, None).await;
    assert_already_exists(clash, "operation", "id", &operation.id.to_string());
}
