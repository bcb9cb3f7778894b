//! The catalog: databases and destinations (create, get, list, update, delete), the
//! built-in `local` destination, redaction of secrets, validation with field violations,
//! and NOT_FOUND / INVALID_ARGUMENT for unknown and malformed ids.

use std::collections::HashMap;

use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{
    TestServer, assert_code, assert_invalid, assert_no_secret, backup_of, error_reason, files, pb,
    redis_database, unknown_id,
};

fn create_database_request(database: pb::Database) -> pb::CreateDatabaseRequest {
    pb::CreateDatabaseRequest { database: Some(database), request_id: String::new() }
}

fn create_destination_request(destination: pb::Destination) -> pb::CreateDestinationRequest {
    pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|path| path.to_string()).collect() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_destination_exists_from_the_first_start() {
    let server = TestServer::start().await;
    let mut destinations = server.destinations();
    let listed =
        destinations.list_destinations(pb::ListDestinationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 1, "{listed:?}");
    let local = &listed.destinations[0];
    assert_eq!(local.name, "local");
    assert!(uuid::Uuid::parse_str(&local.id).is_ok(), "ids are UUIDs: {}", local.id);
    assert_eq!(files::path_of_uri(&local.uri), server.local_backups_dir(), "{}", local.uri);

    let fetched = destinations
        .get_destination(pb::GetDestinationRequest { id: local.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&fetched, local);

    let refused =
        destinations.delete_destination(pb::DeleteDestinationRequest { id: local.id.clone() }).await;
    assert_code(refused, Code::FailedPrecondition);
    let renamed = pb::Destination { id: local.id.clone(), name: "elsewhere".into(), ..Default::default() };
    let refused = destinations
        .update_destination(pb::UpdateDestinationRequest {
            destination: Some(renamed),
            update_mask: mask(&["name"]),
        })
        .await;
    assert_code(refused, Code::FailedPrecondition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_lifecycle_never_shows_the_password() {
    let server = TestServer::start().await;
    let mut databases = server.databases();
    let password = "pw-3f1b9c-never-shown";
    let uri = format!("redis://default:{password}@127.0.0.1:6399/0");
    let mut database = redis_database("orders-cache", &uri);
    database.labels = HashMap::from([("env".to_owned(), "test".to_owned())]);

    let created =
        databases.create_database(create_database_request(database.clone())).await.unwrap().into_inner();
    assert!(uuid::Uuid::parse_str(&created.id).is_ok(), "ids are UUIDs: {}", created.id);
    assert_eq!(created.name, "orders-cache");
    assert_eq!(created.project_id, "default");
    assert_eq!(created.engine, pb::Engine::Redis as i32);
    assert_eq!(created.connection_uri, "redis://default:****@127.0.0.1:6399/0");
    assert_eq!(created.labels, database.labels);
    assert!(created.create_time.is_some() && created.update_time.is_some(), "{created:?}");
    let policy = created.backup_policy.clone().expect("the policy is returned with its defaults");
    assert_eq!(policy.compression, pb::Compression::Zstd as i32, "zstd is the default compression");
    assert_no_secret(password, &created);

    let fetched =
        databases.get_database(pb::GetDatabaseRequest { id: created.id.clone() }).await.unwrap().into_inner();
    assert_eq!(fetched, created);

    let listed = databases.list_databases(pb::ListDatabasesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 1);
    assert_eq!(listed.databases, vec![created.clone()]);
    assert_no_secret(password, &listed);

    // The same name again is refused.
    let duplicate = databases.create_database(create_database_request(database.clone())).await;
    assert_no_secret(password, &assert_code(duplicate, Code::AlreadyExists));

    // Update labels and schedule only.
    let change = pb::Database {
        id: created.id.clone(),
        labels: HashMap::from([
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "cache".to_owned()),
        ]),
        backup_policy: Some(pb::BackupPolicy { schedule: "0 3 * * *".into(), ..Default::default() }),
        ..Default::default()
    };
    let request = pb::UpdateDatabaseRequest {
        database: Some(change.clone()),
        update_mask: mask(&["labels", "backup_policy.schedule"]),
    };
    let updated = databases.update_database(request).await.unwrap().into_inner();
    assert_eq!(updated.labels, change.labels);
    assert_eq!(updated.backup_policy.as_ref().unwrap().schedule, "0 3 * * *");
    assert_eq!(updated.name, "orders-cache", "fields outside the mask stay");
    assert_eq!(updated.connection_uri, created.connection_uri);
    assert_eq!(updated.create_time, created.create_time);
    assert!(timestamp_key(&updated.update_time) >= timestamp_key(&created.update_time));
    assert_no_secret(password, &updated);

    // Sending the redacted URI back (with another port) keeps the stored password and
    // still shows it redacted.
    let change = pb::Database {
        id: created.id.clone(),
        connection_uri: "redis://default:****@127.0.0.1:6400/0".into(),
        ..Default::default()
    };
    let request =
        pb::UpdateDatabaseRequest { database: Some(change), update_mask: mask(&["connection_uri"]) };
    let updated = databases.update_database(request).await.unwrap().into_inner();
    assert_eq!(updated.connection_uri, "redis://default:****@127.0.0.1:6400/0");

    // The engine is immutable.
    let change =
        pb::Database { id: created.id.clone(), engine: pb::Engine::Postgres as i32, ..Default::default() };
    let request = pb::UpdateDatabaseRequest { database: Some(change), update_mask: mask(&["engine"]) };
    assert_invalid(databases.update_database(request).await, "update_mask");

    databases.delete_database(pb::DeleteDatabaseRequest { id: created.id.clone() }).await.unwrap();
    let gone = databases.get_database(pb::GetDatabaseRequest { id: created.id.clone() }).await;
    assert_code(gone, Code::NotFound);
    let again = databases.delete_database(pb::DeleteDatabaseRequest { id: created.id.clone() }).await;
    assert_code(again, Code::NotFound);
    let listed = databases.list_databases(pb::ListDatabasesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_database_with_a_request_id_is_idempotent() {
    let server = TestServer::start().await;
    let mut databases = server.databases();
    let request = pb::CreateDatabaseRequest {
        database: Some(redis_database("sessions", "redis://127.0.0.1:6379")),
        request_id: crate::support::request_id(),
    };
    let first = databases.create_database(request.clone()).await.unwrap().into_inner();
    let retry = databases.create_database(request).await.unwrap().into_inner();
    assert_eq!(retry.id, first.id);
    let listed = databases.list_databases(pb::ListDatabasesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_lifecycle_never_returns_credentials() {
    let server = TestServer::start().await;
    let mut destinations = server.destinations();
    let root = tempfile::tempdir().unwrap();
    let secret_key = "sk-7d0c2e-never-returned";
    let destination = pb::Destination {
        name: "archive".into(),
        uri: files::uri_of_dir(&root.path().join("archive")),
        credentials: HashMap::from([("secret_access_key".to_owned(), secret_key.to_owned())]),
        options: HashMap::from([("region".to_owned(), "eu-west-1".to_owned())]),
        labels: HashMap::from([("tier".to_owned(), "cold".to_owned())]),
        ..Default::default()
    };
    let created = destinations
        .create_destination(create_destination_request(destination.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(uuid::Uuid::parse_str(&created.id).is_ok());
    assert_eq!(created.name, "archive");
    assert_eq!(created.uri, destination.uri);
    assert!(created.credentials.is_empty(), "credentials are input only: {created:?}");
    assert_eq!(created.options, destination.options);
    assert_eq!(created.labels, destination.labels);
    assert_no_secret(secret_key, &created);

    // A password in the URI is shown as ****.
    let ftp_password = "ftp-pw-5a9e1f";
    let ftp = pb::Destination {
        name: "ftp-box".into(),
        uri: format!("ftp://backup:{ftp_password}@127.0.0.1:2121/dumps"),
        ..Default::default()
    };
    let ftp = destinations.create_destination(create_destination_request(ftp)).await.unwrap().into_inner();
    assert_eq!(ftp.uri, "ftp://backup:****@127.0.0.1:2121/dumps");

    let fetched = destinations
        .get_destination(pb::GetDestinationRequest { id: created.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);
    let listed =
        destinations.list_destinations(pb::ListDestinationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 3, "local, archive and ftp-box: {listed:?}");
    assert_no_secret(secret_key, &listed);
    assert_no_secret(ftp_password, &listed);
    assert!(listed.destinations.iter().all(|destination| destination.credentials.is_empty()));

    let duplicate = destinations.create_destination(create_destination_request(destination.clone())).await;
    assert_code(duplicate, Code::AlreadyExists);

    // Update options and credentials; neither the old nor the new secret comes back.
    let new_key = "sk-11aa22-rotated";
    let change = pb::Destination {
        id: created.id.clone(),
        credentials: HashMap::from([("secret_access_key".to_owned(), new_key.to_owned())]),
        options: HashMap::from([("region".to_owned(), "eu-central-1".to_owned())]),
        ..Default::default()
    };
    let request = pb::UpdateDestinationRequest {
        destination: Some(change),
        update_mask: mask(&["credentials", "options"]),
    };
    let updated = destinations.update_destination(request).await.unwrap().into_inner();
    assert_eq!(updated.options.get("region").map(String::as_str), Some("eu-central-1"));
    assert_eq!(updated.name, "archive");
    assert!(updated.credentials.is_empty());
    assert_no_secret(new_key, &updated);

    // A destination that a database policy uses cannot be deleted.
    let mut database = redis_database("uses-archive", "redis://127.0.0.1:6379");
    database.backup_policy =
        Some(pb::BackupPolicy { destination_id: created.id.clone(), ..Default::default() });
    let database = server.register(database).await;
    let refused =
        destinations.delete_destination(pb::DeleteDestinationRequest { id: created.id.clone() }).await;
    assert_code(refused, Code::FailedPrecondition);
    server.databases().delete_database(pb::DeleteDatabaseRequest { id: database.id }).await.unwrap();

    destinations.delete_destination(pb::DeleteDestinationRequest { id: created.id.clone() }).await.unwrap();
    let gone = destinations.get_destination(pb::GetDestinationRequest { id: created.id.clone() }).await;
    assert_code(gone, Code::NotFound);
    let again = destinations.delete_destination(pb::DeleteDestinationRequest { id: created.id }).await;
    assert_code(again, Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_databases_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let mut databases = server.databases();
    let redis = "redis://127.0.0.1:6379";
    let cases: Vec<(&str, pb::Database, &[&str])> = vec![
        ("name with a space", redis_database("bad name", redis), &["database.name"]),
        ("name starting with a dash", redis_database("-cache", redis), &["database.name"]),
        ("empty name", redis_database("", redis), &["database.name"]),
        ("name of 64 characters", redis_database(&"n".repeat(64), redis), &["database.name"]),
        (
            "engine unspecified",
            pb::Database { engine: pb::Engine::Unspecified as i32, ..redis_database("no-engine", redis) },
            &["database.engine"],
        ),
        (
            "postgres engine with a redis URI",
            pb::Database { engine: pb::Engine::Postgres as i32, ..redis_database("mismatch", redis) },
            &["database.connection_uri", "database.engine"],
        ),
        (
            "redis engine with a mysql URI",
            redis_database("mismatch-2", "mysql://root@127.0.0.1:3306/app"),
            &["database.connection_uri", "database.engine"],
        ),
        ("missing URI", redis_database("no-uri", ""), &["database.connection_uri"]),
        ("URI without a host", redis_database("no-host", "redis://"), &["database.connection_uri"]),
        (
            "bad schedule",
            pb::Database {
                backup_policy: Some(pb::BackupPolicy {
                    schedule: "every tuesday".into(),
                    ..Default::default()
                }),
                ..redis_database("bad-schedule", redis)
            },
            &["database.backup_policy.schedule"],
        ),
        (
            "negative retention",
            pb::Database {
                backup_policy: Some(pb::BackupPolicy {
                    retention: Some(pb::RetentionPolicy { keep_last: -1, ..Default::default() }),
                    ..Default::default()
                }),
                ..redis_database("bad-retention", redis)
            },
            &["database.backup_policy.retention.keep_last"],
        ),
        (
            "negative ttl",
            pb::Database {
                backup_policy: Some(pb::BackupPolicy {
                    backup_ttl: Some(prost_types::Duration { seconds: -60, nanos: 0 }),
                    ..Default::default()
                }),
                ..redis_database("bad-ttl", redis)
            },
            &["database.backup_policy.backup_ttl"],
        ),
        (
            "label key with a space",
            pb::Database {
                labels: HashMap::from([("bad key".to_owned(), "v".to_owned())]),
                ..redis_database("bad-label", redis)
            },
            &["database.labels.bad key"],
        ),
    ];
    for (case, database, fields) in cases {
        let result = databases.create_database(create_database_request(database)).await;
        let status = assert_code(result, Code::InvalidArgument);
        let violated = crate::support::violated_fields(&status);
        assert!(
            violated.iter().any(|field| fields.contains(&field.as_str())),
            "{case}: expected a violation of one of {fields:?}, got {violated:?} ({status:?})"
        );
        assert_eq!(error_reason(&status).as_deref(), Some("INVALID_ARGUMENT"), "{case}: {status:?}");
    }
    let missing = databases.create_database(pb::CreateDatabaseRequest::default()).await;
    assert_invalid(missing, "database");

    // A password in an invalid request is not echoed back.
    let password = "pw-in-a-bad-request";
    let database = pb::Database {
        engine: pb::Engine::Postgres as i32,
        ..redis_database("bad name", &format!("redis://u:{password}@127.0.0.1:6379"))
    };
    let status = assert_code(
        databases.create_database(create_database_request(database)).await,
        Code::InvalidArgument,
    );
    assert_no_secret(password, &status);
    assert_no_secret(password, &status.get_error_details_vec());

    let listed = databases.list_databases(pb::ListDatabasesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 0, "nothing invalid was registered: {listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_destinations_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let mut destinations = server.destinations();
    let cases: Vec<(&str, pb::Destination, &str)> = vec![
        ("unsupported scheme", destination("gopher", "gopher://host/dir"), "destination.uri"),
        ("relative path", destination("relative", "relative/dir"), "destination.uri"),
        ("file URI with a host", destination("hosted", "file://otherhost/dir"), "destination.uri"),
        ("the root directory", destination("root", "file:///"), "destination.uri"),
        ("s3 without a bucket", destination("nobucket", "s3:///prefix"), "destination.uri"),
        ("missing URI", destination("nouri", ""), "destination.uri"),
        ("bad name", destination("bad name", "file:///tmp/cellar-x"), "destination.name"),
    ];
    for (case, destination, field) in cases {
        let result = destinations.create_destination(create_destination_request(destination)).await;
        let status = assert_code(result, Code::InvalidArgument);
        let violated = crate::support::violated_fields(&status);
        assert!(violated.iter().any(|name| name == field), "{case}: expected {field}, got {violated:?}");
    }
    let password = "ftp-pw-in-a-bad-request";
    let bad = destination("bad name", &format!("ftpx://user:{password}@127.0.0.1/dir"));
    let status = assert_code(
        destinations.create_destination(create_destination_request(bad)).await,
        Code::InvalidArgument,
    );
    assert_no_secret(password, &status);
    assert_no_secret(password, &status.get_error_details_vec());
}

fn destination(name: &str, uri: &str) -> pb::Destination {
    pb::Destination { name: name.into(), uri: uri.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_backup_requests_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let database = server.register(redis_database("names", "redis://127.0.0.1:1")).await;
    let mut backups = server.backups();
    let past = prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 };
    let named = |name: &str| pb::CreateBackupRequest { name: name.into(), ..backup_of(&database.id) };
    let cases: Vec<(&str, pb::CreateBackupRequest, &str)> = vec![
        ("too short", named("ab"), "name"),
        ("too long", named(&"a".repeat(40)), "name"),
        ("double separator", named("nightly--1"), "name"),
        ("leading separator", named("-nightly"), "name"),
        ("trailing separator", named("nightly-"), "name"),
        ("underscore", named("night_ly"), "name"),
        (
            "past expiry",
            pb::CreateBackupRequest { expire_time: Some(past), ..backup_of(&database.id) },
            "expire_time",
        ),
        ("missing database", pb::CreateBackupRequest::default(), "database_id"),
        ("malformed database id", backup_of("not-a-uuid"), "database_id"),
        (
            "malformed destination id",
            pb::CreateBackupRequest { destination_id: "nope".into(), ..backup_of(&database.id) },
            "destination_id",
        ),
        (
            "unknown compression",
            pb::CreateBackupRequest { compression: 42, ..backup_of(&database.id) },
            "compression",
        ),
        (
            "request id over 64 characters",
            pb::CreateBackupRequest { request_id: "r".repeat(65), ..backup_of(&database.id) },
            "request_id",
        ),
    ];
    for (case, request, field) in cases {
        let status = assert_code(backups.create_backup(request).await, Code::InvalidArgument);
        let violated = crate::support::violated_fields(&status);
        assert!(violated.iter().any(|name| name == field), "{case}: expected {field}, got {violated:?}");
    }
    // Names that match the pattern are accepted (3 to 39 characters, single separators).
    for good in ["abc", "nightly 2024-05-01", "a/b:c-d e", &"x".repeat(39)] {
        let operation = server.start_backup(named(good)).await;
        let done = server.wait_done(&operation.name).await;
        let backup = server.backup(&done.metadata.unwrap().backup_id).await;
        assert_eq!(backup.name, good);
    }
    let listed = backups.list_backups(pb::ListBackupsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.total_size, 4, "only the valid requests made backups");

    // UpdateBackup validates too, before looking the backup up.
    let id = listed.backups[0].id.clone();
    let update = |backup: pb::Backup, paths: &[&str]| pb::UpdateBackupRequest {
        backup: Some(backup),
        update_mask: mask(paths),
    };
    let bad_name = pb::Backup { id: id.clone(), name: "x".into(), ..Default::default() };
    assert_invalid(backups.update_backup(update(bad_name, &["name"])).await, "backup.name");
    let other_field = pb::Backup { id: id.clone(), size_bytes: 5, ..Default::default() };
    assert_invalid(backups.update_backup(update(other_field, &["size_bytes"])).await, "update_mask");
    let unknown = pb::Backup { id: unknown_id(), name: "fine name".into(), ..Default::default() };
    assert_code(backups.update_backup(update(unknown, &["name"])).await, Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_backup_refuses_a_past_expire_time() {
    let server = TestServer::start().await;
    let database = server.register(redis_database("expiry", "redis://127.0.0.1:1")).await;
    let operation = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&operation.name).await;
    let id = done.metadata.unwrap().backup_id;
    let past = prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 };
    let request = pb::UpdateBackupRequest {
        backup: Some(pb::Backup { id: id.clone(), expire_time: Some(past), ..Default::default() }),
        update_mask: mask(&["expire_time"]),
    };
    assert_invalid(server.backups().update_backup(request).await, "backup.expire_time");
    assert_eq!(server.backup(&id).await.expire_time, None, "the expiry did not change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_requests_are_validated() {
    let server = TestServer::start().await;
    let status = server
        .databases()
        .list_databases(pb::ListDatabasesRequest { page_size: -1, ..Default::default() })
        .await;
    assert_invalid(status, "page_size");
    let status = server
        .destinations()
        .list_destinations(pb::ListDestinationsRequest { page_size: -1, ..Default::default() })
        .await;
    assert_invalid(status, "page_size");
    let status =
        server.backups().list_backups(pb::ListBackupsRequest { page_size: -1, ..Default::default() }).await;
    assert_invalid(status, "page_size");
    let status = server
        .operations()
        .list_operations(pb::ListOperationsRequest { page_size: -1, ..Default::default() })
        .await;
    assert_invalid(status, "page_size");

    let filters = [
        "colour = red",
        "state = SHINY",
        "name = a OR name = b",
        "name = \"unterminated",
        "create_time > yesterday",
        "size_bytes = many",
        "name =",
    ];
    for filter in filters {
        let request = pb::ListBackupsRequest { filter: filter.into(), ..Default::default() };
        assert_invalid(server.backups().list_backups(request).await, "filter");
    }
    let request = pb::ListDatabasesRequest { filter: "state = READY".into(), ..Default::default() };
    assert_invalid(server.databases().list_databases(request).await, "filter");
    let request = pb::ListOperationsRequest { filter: "engine = REDIS".into(), ..Default::default() };
    assert_invalid(server.operations().list_operations(request).await, "filter");
    for order_by in ["colour", "name sideways", "labels"] {
        let request = pb::ListBackupsRequest { order_by: order_by.into(), ..Default::default() };
        assert_invalid(server.backups().list_backups(request).await, "order_by");
    }
    let request = pb::ListBackupsRequest { page_token: "not-a-token".into(), ..Default::default() };
    assert_invalid(server.backups().list_backups(request).await, "page_token");
    // Page sizes above the maximum are clamped, not refused.
    let request = pb::ListDestinationsRequest { page_size: 5000, ..Default::default() };
    server.destinations().list_destinations(request).await.expect("a large page size is clamped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_not_found_and_malformed_ids_are_invalid() {
    let server = TestServer::start().await;
    let (mut databases, mut destinations, mut backups, mut operations) =
        (server.databases(), server.destinations(), server.backups(), server.operations());

    let id = unknown_id();
    assert_code(databases.get_database(pb::GetDatabaseRequest { id: id.clone() }).await, Code::NotFound);
    assert_code(
        databases.delete_database(pb::DeleteDatabaseRequest { id: id.clone() }).await,
        Code::NotFound,
    );
    let change = pb::Database { id: id.clone(), name: "renamed".into(), ..Default::default() };
    let request = pb::UpdateDatabaseRequest { database: Some(change), update_mask: mask(&["name"]) };
    assert_code(databases.update_database(request).await, Code::NotFound);
    assert_code(
        destinations.get_destination(pb::GetDestinationRequest { id: id.clone() }).await,
        Code::NotFound,
    );
    assert_code(
        destinations.delete_destination(pb::DeleteDestinationRequest { id: id.clone() }).await,
        Code::NotFound,
    );
    assert_code(backups.get_backup(pb::GetBackupRequest { id: id.clone() }).await, Code::NotFound);
    let request = pb::DeleteBackupRequest { id: id.clone(), request_id: String::new() };
    assert_code(backups.delete_backup(request).await, Code::NotFound);
    assert_code(backups.create_backup(backup_of(&id)).await, Code::NotFound);
    for name in [id.clone(), format!("operations/{id}")] {
        assert_code(
            operations.get_operation(pb::GetOperationRequest { name: name.clone() }).await,
            Code::NotFound,
        );
        assert_code(
            operations.cancel_operation(pb::CancelOperationRequest { name: name.clone() }).await,
            Code::NotFound,
        );
        assert_code(
            operations.delete_operation(pb::DeleteOperationRequest { name: name.clone() }).await,
            Code::NotFound,
        );
        let wait = pb::WaitOperationRequest { name: name.clone(), timeout: None };
        assert_code(operations.wait_operation(wait).await, Code::NotFound);
        let watch = operations.watch_operation(pb::WatchOperationRequest { name: name.clone() }).await;
        assert_code(watch.map(|_| ()), Code::NotFound);
    }

    for malformed in ["not-a-uuid", "12345", "operations/xyz"] {
        let malformed = malformed.to_owned();
        assert_invalid(databases.get_database(pb::GetDatabaseRequest { id: malformed.clone() }).await, "id");
        assert_invalid(
            databases.delete_database(pb::DeleteDatabaseRequest { id: malformed.clone() }).await,
            "id",
        );
        assert_invalid(
            destinations.get_destination(pb::GetDestinationRequest { id: malformed.clone() }).await,
            "id",
        );
        assert_invalid(backups.get_backup(pb::GetBackupRequest { id: malformed.clone() }).await, "id");
        let request = pb::DeleteBackupRequest { id: malformed.clone(), request_id: String::new() };
        assert_invalid(backups.delete_backup(request).await, "id");
        assert_invalid(
            operations.get_operation(pb::GetOperationRequest { name: malformed.clone() }).await,
            "name",
        );
        assert_invalid(
            operations.cancel_operation(pb::CancelOperationRequest { name: malformed.clone() }).await,
            "name",
        );
    }
    assert_invalid(databases.get_database(pb::GetDatabaseRequest { id: String::new() }).await, "id");
    let negative = pb::WaitOperationRequest {
        name: unknown_id(),
        timeout: Some(prost_types::Duration { seconds: -1, nanos: 0 }),
    };
    assert_invalid(operations.wait_operation(negative).await, "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_naming_an_unknown_destination_is_not_found() {
    let server = TestServer::start().await;
    let mut database = redis_database("policy-dest", "redis://127.0.0.1:1");
    database.backup_policy = Some(pb::BackupPolicy { destination_id: unknown_id(), ..Default::default() });
    let result = server.databases().create_database(create_database_request(database)).await;
    assert_code(result, Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_to_an_unknown_destination_is_not_found() {
    let server = TestServer::start().await;
    let database = server.register(redis_database("backup-dest", "redis://127.0.0.1:1")).await;
    let request = pb::CreateBackupRequest { destination_id: unknown_id(), ..backup_of(&database.id) };
    assert_code(server.backups().create_backup(request).await, Code::NotFound);
    assert!(server.all_operations("").await.is_empty(), "nothing was started");
}

fn timestamp_key(time: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let time = time.as_ref().expect("timestamp set");
    (time.seconds, time.nanos)
}
