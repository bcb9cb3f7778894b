//! The shared test suite every [`Store`] implementation must pass.
//!
//! Each run tags what it writes (names, project ids, labels, request ids) with a fresh
//! random tag and only looks at its own data, so the suite can run against a catalog that
//! already holds data, or twice against the same one. Every check talks to the store
//! through the trait alone; a backend's tests call [`run_all`] on a fresh store.
//!
//! Besides the trait's documented contract, the suite pins behaviour a second backend
//! must copy: `!=` also matches a missing value (NULL, or a label the resource lacks),
//! ordering puts missing values above all others, `:` on text is "contains" with no
//! wildcards, filter times between two microseconds compare as the exact instant, and
//! inserting an id that exists is [`Error::AlreadyExists`] with field `id`.

mod crud;
mod listing;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Error, Store};
use crate::domain::list::{ListQuery, schemas};
use crate::domain::{
    Backup, BackupId, BackupName, BackupOrigin, BackupPolicy, BackupState, Code, Compression, ConnectionUri,
    Database, DatabaseId, Destination, DestinationId, EngineKind, Failure, Operation, OperationKind,
    OperationResult, OperationState, Progress, ResourceName, RetentionPolicy, Secret, Timestamp, Webhook,
    reason,
};

/// A password and a credential that must never appear in an error.
pub(crate) const SECRET: &str = "hunter2-catalog-secret";

/// An age recipient (a public key) for the policies and backups of the suite.
const AGE_RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/// Runs every check of the suite against `store`.
pub(crate) async fn run_all(store: &dyn Store) {
    crud::databases(store).await;
    crud::database_request_ids(store).await;
    crud::destinations(store).await;
    crud::destination_request_ids(store).await;
    crud::destination_in_use(store).await;
    crud::backups(store).await;
    crud::operations(store).await;
    crud::operation_atomicity(store).await;
    listing::backup_filters(store).await;
    listing::label_filters(store).await;
    listing::time_filters(store).await;
    listing::database_and_destination_filters(store).await;
    listing::operation_filters(store).await;
    listing::ordering(store).await;
    listing::pagination(store).await;
    listing::foreign_fields_are_refused(store).await;
}

/// One resource of each kind, written by [`write_sample`] to be read back after the
/// backend restarts.
#[derive(Debug)]
pub(crate) struct Sample {
    database: Database,
    destination: Destination,
    backup: Backup,
    operation: Operation,
    operation_backup: Backup,
}

/// Writes a [`Sample`].
pub(crate) async fn write_sample(store: &dyn Store) -> Sample {
    let run = Run::new();
    let sample = Sample {
        database: run.database("persisted"),
        destination: run.destination("persisted"),
        backup: run.backup("persisted"),
        operation: run.finished_operation(),
        operation_backup: run.backup("created by op"),
    };
    store.create_database(&sample.database, Some(&run.request_id("persisted"))).await.unwrap();
    store.create_destination(&sample.destination, None).await.unwrap();
    store.create_backup(&sample.backup).await.unwrap();
    store.create_operation(&sample.operation, Some(&sample.operation_backup)).await.unwrap();
    sample
}

impl Sample {
    /// The sample's database.
    pub(crate) fn database(&self) -> &Database {
        &self.database
    }

    /// The sample's destination.
    pub(crate) fn destination(&self) -> &Destination {
        &self.destination
    }
}

/// Checks that every resource of `sample` reads back unchanged.
pub(crate) async fn check_sample(store: &dyn Store, sample: &Sample) {
    assert_eq!(store.get_database(sample.database.id).await.unwrap(), sample.database);
    assert_eq!(store.get_destination(sample.destination.id).await.unwrap(), sample.destination);
    assert_eq!(store.get_backup(sample.backup.id).await.unwrap(), sample.backup);
    assert_eq!(store.get_backup(sample.operation_backup.id).await.unwrap(), sample.operation_backup);
    assert_eq!(store.get_operation(sample.operation.id).await.unwrap(), sample.operation);
    let filter = format!(r#"project_id = "{}""#, sample.backup.project_id);
    let listed = store.list_backups(&backups_query(&filter, "")).await.unwrap();
    assert_eq!(listed.total_size, 2);
}

/// Builds the data of one run, every value tagged with the run's tag.
struct Run {
    tag: String,
}

impl Run {
    fn new() -> Self {
        Run { tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned() }
    }

    /// The project id of everything this run creates.
    fn project(&self) -> String {
        format!("suite-{}", self.tag)
    }

    fn name(&self, base: &str) -> ResourceName {
        ResourceName::parse(&format!("{base}-{}", self.tag)).unwrap()
    }

    fn request_id(&self, base: &str) -> String {
        format!("{base}-{}", self.tag)
    }

    /// A database with every field set to something other than its default.
    fn database(&self, base: &str) -> Database {
        let uri = format!("postgres://backup:{SECRET}@db.internal:5433/orders?sslmode=require");
        Database {
            id: DatabaseId::new(),
            name: self.name(base),
            project_id: self.project(),
            engine: EngineKind::Postgres,
            connection_uri: ConnectionUri::parse(&uri).unwrap(),
            backup_policy: BackupPolicy {
                destination_id: Some(DestinationId::new()),
                schedule: "0 3 * * *".to_owned(),
                compression: Compression::Gzip,
                retention: RetentionPolicy {
                    keep_last: 1,
                    keep_hourly: 2,
                    keep_daily: 3,
                    keep_weekly: 4,
                    keep_monthly: 5,
                },
                backup_ttl: Some(Duration::new(7 * 86_400, 250_000_001)),
                age_recipients: vec![crate::domain::AgeRecipient::parse(AGE_RECIPIENT).unwrap()],
            },
            labels: labels(&[("env", "prod"), ("suite", &self.tag)]),
            webhook: Some(Webhook {
                url: Webhook::parse_url("https://hooks.example.com/cellar?team=db").unwrap(),
                secret: Secret::new(format!("whsec-{SECRET}")),
            }),
            create_time: time("2026-02-03T04:05:06.123456Z"),
            update_time: time("2026-02-03T04:05:07.654321Z"),
        }
    }

    /// A destination with every field set, credentials included.
    fn destination(&self, base: &str) -> Destination {
        Destination {
            id: DestinationId::new(),
            name: self.name(base),
            uri: format!("ftp://backup:{SECRET}@ftp.internal:21/backups"),
            credentials: BTreeMap::from([
                ("access_key_id".to_owned(), Secret::new("AKIAEXAMPLE")),
                ("secret_access_key".to_owned(), Secret::new(SECRET)),
            ]),
            options: BTreeMap::from([
                ("endpoint".to_owned(), "http://127.0.0.1:9000".to_owned()),
                ("allow_http".to_owned(), "true".to_owned()),
            ]),
            labels: labels(&[("suite", &self.tag), ("tier", "cold")]),
            create_time: time("2026-02-03T04:05:06.000001Z"),
            update_time: time("2026-02-03T04:05:06.000002Z"),
        }
    }

    /// A ready backup with every field set (optional ones to `Some`).
    fn backup(&self, base: &str) -> Backup {
        Backup {
            id: BackupId::new(),
            name: BackupName::parse(&format!("{base} {}", self.tag)).unwrap(),
            database_id: Some(DatabaseId::new()),
            instance_name: "orders-primary".to_owned(),
            database_name: "orders".to_owned(),
            project_id: self.project(),
            engine: EngineKind::Postgres,
            server_version: "16.4".to_owned(),
            state: BackupState::Ready,
            size_bytes: 1_234_567,
            logical_size_bytes: 9_876_543,
            sha256: "ab".repeat(32),
            compression: Compression::Zstd,
            format: "pg_custom".to_owned(),
            destination_id: DestinationId::new(),
            object_key: format!("orders/{}.dump.zst", self.tag),
            uri: format!("s3://bucket/orders/{}.dump.zst", self.tag),
            origin: BackupOrigin::Scheduled,
            create_time: time("2026-02-03T04:05:06.100000Z"),
            update_time: time("2026-02-03T04:05:09.999999Z"),
            expire_time: Some(time("2026-03-03T04:05:06.100000Z")),
            labels: labels(&[("suite", &self.tag), ("env", "prod")]),
            parts: Vec::new(),
            age_recipients: vec![crate::domain::AgeRecipient::parse(AGE_RECIPIENT).unwrap()],
        }
    }

    /// A failed backup operation with every field set: progress, times, warnings, an
    /// error and a result.
    fn finished_operation(&self) -> Operation {
        let mut operation = Operation::queued(
            OperationKind::Backup,
            Some(DatabaseId::new()),
            Some(BackupId::new()),
            Some(self.request_id("finished")),
        );
        operation.state = OperationState::Failed;
        operation.phase = "uploading".to_owned();
        operation.progress = Progress {
            bytes_done: 10,
            bytes_total: 20,
            items_done: 3,
            items_total: 4,
            bytes_per_second: u64::MAX,
            items_unit: crate::domain::ItemsUnit::Tables,
        };
        operation.queue_position = 7;
        operation.create_time = time("2026-02-03T04:05:06.000001Z");
        operation.start_time = Some(time("2026-02-03T04:05:07.000002Z"));
        operation.update_time = time("2026-02-03T04:05:08.000003Z");
        operation.end_time = Some(time("2026-02-03T04:05:09.000004Z"));
        operation.cancel_time = Some(time("2026-02-03T04:05:08.500000Z"));
        operation.warnings = vec![
            Failure::new(Code::DataLoss, reason::SOURCE_CORRUPT, "key 'a' skipped").with("key", "a"),
            Failure::new(Code::Unavailable, reason::STORAGE_FAILED, "retried upload"),
        ];
        operation.error = Some(Failure::new(Code::Unavailable, reason::STORAGE_FAILED, "bucket gone"));
        operation.result = Some(OperationResult::Backup(Box::new(self.backup("in a result"))));
        operation
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

fn time(text: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// A backups query as a client would send it, in one page of up to 1000.
fn backups_query(filter: &str, order_by: &str) -> ListQuery {
    ListQuery::parse(&schemas::BACKUPS, 1000, "", filter, order_by)
        .unwrap_or_else(|invalid| panic!("{filter} / {order_by}: {invalid}"))
}

/// Panics unless `result` is [`Error::NotFound`] for this kind and id.
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>, kind: &str, id: impl ToString) {
    match result {
        Err(Error::NotFound { kind: found_kind, id: found_id }) => {
            assert_eq!((found_kind, found_id), (kind, id.to_string()));
        }
        other => panic!("expected {kind} not found, got {other:?}"),
    }
}

/// Panics unless `result` is [`Error::AlreadyExists`] with these kind, field and value,
/// and its message has no secret.
fn assert_already_exists<T: std::fmt::Debug>(result: Result<T, Error>, kind: &str, field: &str, value: &str) {
    match result {
        Err(error @ Error::AlreadyExists { .. }) => {
            assert_no_secret(&error);
            let Error::AlreadyExists { kind: found_kind, field: found_field, value: found_value } = error
            else {
                unreachable!()
            };
            assert_eq!((found_kind, found_field, found_value.as_str()), (kind, field, value));
        }
        other => panic!("expected {kind} with {field} '{value}' to exist already, got {other:?}"),
    }
}

fn assert_no_secret(error: &Error) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(SECRET), "an error shows a secret: {shown}");
}

/// The ids of `items`, for comparisons that name what differs.
fn ids<T, I: ToString>(items: &[T], id: impl Fn(&T) -> I) -> Vec<String> {
    items.iter().map(|item| id(item).to_string()).collect()
}
