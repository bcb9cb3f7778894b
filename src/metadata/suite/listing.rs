//! Suite checks of listing: every filter operator on each field type, order_by with the
//! id tie-breaker, and walking pages with page tokens.

use std::cmp::{Ordering, Reverse};

use chrono::Duration;

use super::{Run, backups_query, ids, labels, time};
use crate::domain::list::{Clause, ListQuery, Op, Schema, Value, schemas};
use crate::domain::{
    Backup, BackupId, BackupOrigin, BackupState, Compression, DatabaseId, DestinationId, EngineKind, Labels,
    Operation, OperationKind, OperationState, Timestamp,
};
use crate::metadata::{Error, Store};

/// The start of the suite's backup timeline.
fn base_time() -> Timestamp {
    time("2026-04-01T00:00:00Z")
}

/// The listed fields of one fixture backup.
struct Spec {
    name: &'static str,
    state: BackupState,
    origin: BackupOrigin,
    compression: Compression,
    engine: EngineKind,
    size_bytes: u64,
    database_id: Option<DatabaseId>,
    instance_name: &'static str,
    database_name: &'static str,
    destination_id: DestinationId,
    labels: Labels,
    /// After [`base_time`].
    created: Duration,
    /// After [`base_time`].
    expires: Option<Duration>,
}

/// Four backups with distinct values in every listed field, known by their base name.
struct Fixture {
    run: Run,
    database_ids: [DatabaseId; 2],
    destination_ids: [DestinationId; 2],
}

impl Fixture {
    async fn write(store: &dyn Store) -> Fixture {
        let fixture = Fixture {
            run: Run::new(),
            database_ids: [DatabaseId::new(), DatabaseId::new()],
            destination_ids: [DestinationId::new(), DestinationId::new()],
        };
        let [d1, d2] = fixture.database_ids.map(Some);
        let [x1, x2] = fixture.destination_ids;
        let (hour, day) = (Duration::hours(1), Duration::days(1));
        let specs = [
            Spec {
                name: "alpha",
                state: BackupState::Ready,
                origin: BackupOrigin::Scheduled,
                compression: Compression::Zstd,
                engine: EngineKind::Postgres,
                size_bytes: 100,
                database_id: d1,
                instance_name: "orders-primary",
                database_name: "orders",
                destination_id: x1,
                labels: labels(&[("env", "prod"), ("tier", "gold")]),
                created: hour + Duration::microseconds(5),
                expires: Some(day * 30),
            },
            Spec {
                name: "beta",
                state: BackupState::Failed,
                origin: BackupOrigin::OnDemand,
                compression: Compression::Gzip,
                engine: EngineKind::Redis,
                size_bytes: 200,
                database_id: d1,
                instance_name: "cache",
                database_name: "0",
                destination_id: x2,
                labels: labels(&[("env", "staging")]),
                created: hour * 2,
                expires: None,
            },
            Spec {
                name: "gamma",
                state: BackupState::Creating,
                origin: BackupOrigin::Imported,
                compression: Compression::None,
                engine: EngineKind::Mysql,
                size_bytes: 200,
                database_id: None,
                instance_name: "",
                database_name: "100%_done",
                destination_id: x1,
                labels: labels(&[("we\"ird'$.[0]", "x")]),
                created: hour * 3,
                expires: Some(day * 10),
            },
            Spec {
                name: "delta",
                state: BackupState::Ready,
                origin: BackupOrigin::Scheduled,
                compression: Compression::Zstd,
                engine: EngineKind::Postgres,
                size_bytes: 0,
                database_id: d2,
                instance_name: "orders-replica",
                database_name: "orders_2024",
                destination_id: x2,
                labels: labels(&[("env", "prod"), ("a.b", "dotted")]),
                created: hour * 4,
                expires: Some(day * 40),
            },
        ];
        for spec in specs {
            let mut backup = fixture.run.backup(spec.name);
            backup.state = spec.state;
            backup.origin = spec.origin;
            backup.compression = spec.compression;
            backup.engine = spec.engine;
            backup.size_bytes = spec.size_bytes;
            backup.database_id = spec.database_id;
            backup.instance_name = spec.instance_name.to_owned();
            backup.database_name = spec.database_name.to_owned();
            backup.destination_id = spec.destination_id;
            backup.labels = spec.labels;
            backup.create_time = base_time() + spec.created;
            backup.expire_time = spec.expires.map(|offset| base_time() + offset);
            store.create_backup(&backup).await.unwrap();
        }
        fixture
    }

    /// Lists this fixture's backups matching `filter`; checks the names and the total.
    async fn check(&self, store: &dyn Store, filter: &str, expected: &[&str]) {
        let scoped = format!(r#"project_id = "{}" AND {filter}"#, self.run.project());
        let page = store.list_backups(&backups_query(&scoped, "")).await.unwrap();
        self.check_page(&page.items, page.total_size, filter, expected);
    }

    /// Lists this fixture's backups matching `clause`, built without the filter parser.
    async fn check_clause(&self, store: &dyn Store, clause: Clause, expected: &[&str]) {
        let description = format!("{clause:?}");
        let scope = Clause {
            field: "project_id",
            label_key: None,
            op: Op::Eq,
            value: Value::Text(self.run.project()),
        };
        let page = store.list_backups(&ListQuery::all(vec![scope, clause])).await.unwrap();
        self.check_page(&page.items, page.total_size, &description, expected);
    }

    fn check_page(&self, items: &[Backup], total: u64, filter: &str, expected: &[&str]) {
        let suffix = format!(" {}", self.run.tag);
        let mut names: Vec<&str> =
            items.iter().map(|backup| backup.name.as_str().strip_suffix(&suffix).unwrap()).collect();
        names.sort_unstable();
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected, "filter: {filter}");
        assert_eq!(total, expected.len() as u64, "total_size of filter: {filter}");
    }
}

/// Text, enum and integer fields of backups under every operator.
pub(crate) async fn backup_filters(store: &dyn Store) {
    let fixture = Fixture::write(store).await;
    let tag = &fixture.run.tag;
    let [d1, _] = fixture.database_ids;
    let [x1, _] = fixture.destination_ids;
    let cases: &[(String, &[&str])] = &[
        // Text.
        (format!(r#"name = "beta {tag}""#), &["beta"]),
        (format!(r#"name != "beta {tag}""#), &["alpha", "gamma", "delta"]),
        (format!(r#"name < "beta {tag}""#), &["alpha"]),
        (format!(r#"name <= "beta {tag}""#), &["alpha", "beta"]),
        (format!(r#"name > "beta {tag}""#), &["gamma", "delta"]),
        (format!(r#"name >= "delta {tag}""#), &["gamma", "delta"]),
        ("name:amm".to_owned(), &["gamma"]),
        ("name:AMM".to_owned(), &[]),
        (format!("database_id = {d1}"), &["alpha", "beta"]),
        // `!=` matches a missing value: gamma has no database.
        (format!("database_id != {d1}"), &["gamma", "delta"]),
        (format!("destination_id = {x1}"), &["alpha", "gamma"]),
        ("instance_name:orders".to_owned(), &["alpha", "delta"]),
        (r#"instance_name = """#.to_owned(), &["gamma"]),
        // `:` has no wildcards.
        (r#"database_name:"%""#.to_owned(), &["gamma"]),
        (r#"database_name:"_""#.to_owned(), &["gamma", "delta"]),
        (r#"database_name:"o%s""#.to_owned(), &[]),
        (r#"database_name = "0""#.to_owned(), &["beta"]),
        // Enums, by API name or text form; `:` is equality.
        ("state = BACKUP_STATE_READY".to_owned(), &["alpha", "delta"]),
        ("state = ready".to_owned(), &["alpha", "delta"]),
        ("state != BACKUP_STATE_READY".to_owned(), &["beta", "gamma"]),
        ("state:READY".to_owned(), &["alpha", "delta"]),
        ("origin = BACKUP_ORIGIN_ON_DEMAND".to_owned(), &["beta"]),
        ("origin != scheduled".to_owned(), &["beta", "gamma"]),
        ("compression = COMPRESSION_NONE".to_owned(), &["gamma"]),
        ("engine = ENGINE_POSTGRES".to_owned(), &["alpha", "delta"]),
        ("engine != ENGINE_REDIS AND state = BACKUP_STATE_READY".to_owned(), &["alpha", "delta"]),
        // Integers.
        ("size_bytes = 200".to_owned(), &["beta", "gamma"]),
        ("size_bytes != 200".to_owned(), &["alpha", "delta"]),
        ("size_bytes < 200".to_owned(), &["alpha", "delta"]),
        ("size_bytes <= 200".to_owned(), &["alpha", "beta", "gamma", "delta"]),
        ("size_bytes > 100".to_owned(), &["beta", "gamma"]),
        ("size_bytes >= 100".to_owned(), &["alpha", "beta", "gamma"]),
        ("size_bytes:0".to_owned(), &["delta"]),
        ("size_bytes > -1 AND size_bytes < 150 AND state = ready".to_owned(), &["alpha", "delta"]),
        ("size_bytes > 1000000".to_owned(), &[]),
    ];
    for (filter, expected) in cases {
        fixture.check(store, filter, expected).await;
    }
}

/// Label filters: `labels.KEY op value`, `labels:KEY`, and keys no JSON path could hold.
pub(crate) async fn label_filters(store: &dyn Store) {
    let fixture = Fixture::write(store).await;
    let cases: &[(&str, &[&str])] = &[
        ("labels.env = prod", &["alpha", "delta"]),
        // `!=` matches resources without the key too.
        ("labels.env != prod", &["beta", "gamma"]),
        ("labels.env < q", &["alpha", "delta"]),
        ("labels.env <= prod", &["alpha", "delta"]),
        ("labels.env > prod", &["beta"]),
        ("labels.env >= prod", &["alpha", "beta", "delta"]),
        (r#"labels.env:"stag""#, &["beta"]),
        ("labels.env:%", &[]),
        ("labels:tier", &["alpha"]),
        ("labels:env", &["alpha", "beta", "delta"]),
        ("labels:nope", &[]),
        (r#"labels:"a.b""#, &["delta"]),
        ("labels.a.b = dotted", &["delta"]),
        ("labels.a = dotted", &[]),
        ("labels:env AND labels.tier = gold", &["alpha"]),
        ("labels.tier = gold AND labels.env = staging", &[]),
    ];
    for (filter, expected) in cases {
        fixture.check(store, filter, expected).await;
    }

    let label = |key: &str, op: Op, value: Value| Clause {
        field: "labels",
        label_key: Some(key.to_owned()),
        op,
        value,
    };
    let weird = "we\"ird'$.[0]";
    fixture.check_clause(store, label(weird, Op::Has, Value::None), &["gamma"]).await;
    fixture.check_clause(store, label(weird, Op::Eq, Value::Text("x".into())), &["gamma"]).await;
    fixture.check_clause(store, label("we", Op::Has, Value::None), &[]).await;
    fixture.check_clause(store, label("env\"", Op::Has, Value::None), &[]).await;
    fixture.check_clause(store, label("$", Op::Has, Value::None), &[]).await;
    fixture.check_clause(store, label("' OR 1=1 --", Op::Eq, Value::Text("x".into())), &[]).await;
}

/// Time fields under every operator, missing expiry times, offsets other than UTC, and
/// bounds that fall between two microseconds.
pub(crate) async fn time_filters(store: &dyn Store) {
    let fixture = Fixture::write(store).await;
    let at = |offset: Duration| (base_time() + offset).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let hour = Duration::hours(1);
    let day = Duration::days(1);
    let alpha = hour + Duration::microseconds(5);
    let between = alpha + Duration::nanoseconds(500);
    let cases: Vec<(String, &[&str])> = vec![
        (format!(r#"create_time = "{}""#, at(hour * 2)), &["beta"]),
        (format!(r#"create_time != "{}""#, at(hour * 2)), &["alpha", "gamma", "delta"]),
        (format!(r#"create_time < "{}""#, at(hour * 2)), &["alpha"]),
        (format!(r#"create_time <= "{}""#, at(hour * 2)), &["alpha", "beta"]),
        (format!(r#"create_time > "{}""#, at(hour * 2)), &["gamma", "delta"]),
        (format!(r#"create_time >= "{}""#, at(hour * 2)), &["beta", "gamma", "delta"]),
        (format!(r#"create_time:"{}""#, at(hour * 3)), &["gamma"]),
        (format!(r#"create_time > "{}" AND create_time < "{}""#, at(hour * 2), at(hour * 4)), &["gamma"]),
        // Unquoted, and with another offset naming the same instant.
        (format!("create_time = {}", at(alpha)), &["alpha"]),
        ("create_time = 2026-04-01T06:00:00+04:00".to_owned(), &["beta"]),
        // Stored times have microseconds; a bound between two of them is exact.
        (format!(r#"create_time = "{}""#, at(alpha)), &["alpha"]),
        (format!(r#"create_time < "{}""#, at(between)), &["alpha"]),
        (format!(r#"create_time <= "{}""#, at(between)), &["alpha"]),
        (format!(r#"create_time > "{}""#, at(between)), &["beta", "gamma", "delta"]),
        (format!(r#"create_time >= "{}""#, at(between)), &["beta", "gamma", "delta"]),
        (format!(r#"create_time = "{}""#, at(between)), &[]),
        (format!(r#"create_time != "{}""#, at(between)), &["alpha", "beta", "gamma", "delta"]),
        (format!(r#"create_time < "{}""#, at(alpha - Duration::nanoseconds(1))), &[]),
        // A backup that never expires matches neither side of a bound, but `!=`.
        (format!(r#"expire_time < "{}""#, at(day * 35)), &["alpha", "gamma"]),
        (format!(r#"expire_time > "{}""#, at(day * 20)), &["alpha", "delta"]),
        (format!(r#"expire_time != "{}""#, at(day * 30)), &["beta", "gamma", "delta"]),
        (format!(r#"update_time = "{}""#, at(hour)), &[]),
    ];
    for (filter, expected) in &cases {
        fixture.check(store, filter, expected).await;
    }
}

fn query(schema: &Schema, filter: &str, order_by: &str) -> ListQuery {
    ListQuery::parse(schema, 1000, "", filter, order_by)
        .unwrap_or_else(|invalid| panic!("{filter} / {order_by}: {invalid}"))
}

/// The filterable fields of databases and destinations.
pub(crate) async fn database_and_destination_filters(store: &dyn Store) {
    let run = Run::new();
    let tag = &run.tag;
    let hour = Duration::hours(1);
    let specs = [
        ("orders", EngineKind::Postgres, run.project(), "prod"),
        ("cache", EngineKind::Redis, run.project(), "dev"),
        ("shop", EngineKind::Mysql, format!("{}-other", run.project()), ""),
    ];
    for (index, (name, engine, project, env)) in specs.into_iter().enumerate() {
        let mut database = run.database(name);
        database.engine = engine;
        database.connection_uri =
            crate::domain::ConnectionUri::parse(&format!("{}://h", engine.uri_schemes()[0])).unwrap();
        database.project_id = project;
        database.labels = labels(&[("suite", tag)]);
        if !env.is_empty() {
            database.labels.insert("env".to_owned(), env.to_owned());
        }
        database.create_time = base_time() + hour * index as i32;
        database.update_time = database.create_time + hour * 10;
        store.create_database(&database, None).await.unwrap();
    }
    let project = run.project();
    let at = |offset: Duration| (base_time() + offset).to_rfc3339();
    let cases: Vec<(String, &[&str])> = vec![
        ("engine = ENGINE_REDIS".to_owned(), &["cache"]),
        ("engine != redis".to_owned(), &["orders", "shop"]),
        (format!(r#"project_id = "{project}""#), &["orders", "cache"]),
        ("project_id:-other".to_owned(), &["shop"]),
        ("name:ord".to_owned(), &["orders"]),
        (format!("name = cache-{tag}"), &["cache"]),
        (format!("name > cache-{tag}"), &["orders", "shop"]),
        ("labels.env = prod".to_owned(), &["orders"]),
        ("labels.env != prod".to_owned(), &["cache", "shop"]),
        ("labels:env".to_owned(), &["orders", "cache"]),
        (format!(r#"create_time >= "{}""#, at(hour)), &["cache", "shop"]),
        (format!(r#"update_time < "{}""#, at(hour * 11)), &["orders"]),
    ];
    for (filter, expected) in &cases {
        let scoped = format!(r#"labels.suite = "{tag}" AND {filter}"#);
        let page = store.list_databases(&query(&schemas::DATABASES, &scoped, "name")).await.unwrap();
        let names: Vec<String> = page.items.iter().map(|database| database.name.to_string()).collect();
        let mut expected: Vec<String> = expected.iter().map(|name| format!("{name}-{tag}")).collect();
        expected.sort_unstable();
        assert_eq!(names, expected, "database filter: {filter}");
        assert_eq!(page.total_size, expected.len() as u64, "database filter: {filter}");
    }

    for (index, (name, tier)) in [("s3", "cold"), ("ftp", "hot"), ("local", "")].into_iter().enumerate() {
        let mut destination = run.destination(name);
        destination.labels = labels(&[("suite", tag)]);
        if !tier.is_empty() {
            destination.labels.insert("tier".to_owned(), tier.to_owned());
        }
        destination.create_time = base_time() + hour * index as i32;
        destination.update_time = destination.create_time;
        store.create_destination(&destination, None).await.unwrap();
    }
    let cases: Vec<(String, &[&str])> = vec![
        ("name:s3".to_owned(), &["s3"]),
        (format!("name != s3-{tag}"), &["ftp", "local"]),
        ("labels.tier = hot".to_owned(), &["ftp"]),
        ("labels.tier != hot".to_owned(), &["s3", "local"]),
        ("labels:tier".to_owned(), &["s3", "ftp"]),
        (format!(r#"create_time < "{}""#, at(hour)), &["s3"]),
        (format!(r#"update_time > "{}""#, at(hour)), &["local"]),
    ];
    for (filter, expected) in &cases {
        let scoped = format!(r#"labels.suite = "{tag}" AND {filter}"#);
        let page =
            store.list_destinations(&query(&schemas::DESTINATIONS, &scoped, "name desc")).await.unwrap();
        let names: Vec<String> = page.items.iter().map(|destination| destination.name.to_string()).collect();
        let mut expected: Vec<String> = expected.iter().map(|name| format!("{name}-{tag}")).collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(names, expected, "destination filter: {filter}");
        assert_eq!(page.total_size, expected.len() as u64, "destination filter: {filter}");
    }
}

/// The filterable fields of operations, and their default order.
pub(crate) async fn operation_filters(store: &dyn Store) {
    let (database, other_database) = (DatabaseId::new(), DatabaseId::new());
    let (backup, other_backup) = (BackupId::new(), BackupId::new());
    let minute = Duration::minutes(1);
    let specs = [
        ("queued-backup", OperationKind::Backup, OperationState::Queued, database, Some(backup)),
        ("running-restore", OperationKind::Restore, OperationState::Running, database, None),
        ("done-delete", OperationKind::DeleteBackup, OperationState::Succeeded, database, Some(other_backup)),
        ("failed-import", OperationKind::ImportBackup, OperationState::Failed, database, Some(other_backup)),
        ("elsewhere", OperationKind::Backup, OperationState::Queued, other_database, Some(backup)),
    ];
    let mut operations = Vec::new();
    for (index, (phase, kind, state, database_id, backup_id)) in specs.into_iter().enumerate() {
        let mut operation = Operation::queued(kind, Some(database_id), backup_id, None);
        operation.phase = phase.to_owned();
        operation.state = state;
        // Two operations share a create time, so the id breaks the tie.
        operation.create_time = base_time() + minute * (index as i32).min(2);
        operation.update_time = operation.create_time + minute * 10;
        store.create_operation(&operation, None).await.unwrap();
        operations.push(operation);
    }
    let at = |offset: Duration| (base_time() + offset).to_rfc3339();
    let cases: Vec<(String, &[&str])> = vec![
        (String::new(), &["queued-backup", "running-restore", "done-delete", "failed-import"]),
        ("kind = OPERATION_KIND_BACKUP".to_owned(), &["queued-backup"]),
        ("kind:backup".to_owned(), &["queued-backup"]),
        ("kind != backup".to_owned(), &["running-restore", "done-delete", "failed-import"]),
        ("state = OPERATION_STATE_RUNNING".to_owned(), &["running-restore"]),
        ("state != queued AND state != running".to_owned(), &["done-delete", "failed-import"]),
        (format!("backup_id = {other_backup}"), &["done-delete", "failed-import"]),
        (format!("backup_id != {other_backup}"), &["queued-backup", "running-restore"]),
        (format!(r#"create_time > "{}""#, at(minute)), &["done-delete", "failed-import"]),
        (format!(r#"create_time <= "{}""#, at(minute)), &["queued-backup", "running-restore"]),
        (format!(r#"update_time = "{}""#, at(minute * 12)), &["done-delete", "failed-import"]),
    ];
    for (filter, expected) in &cases {
        let scoped = match filter.as_str() {
            "" => format!("database_id = {database}"),
            _ => format!("database_id = {database} AND {filter}"),
        };
        let page = store.list_operations(&query(&schemas::OPERATIONS, &scoped, "")).await.unwrap();
        let mut phases: Vec<&str> = page.items.iter().map(|operation| operation.phase.as_str()).collect();
        phases.sort_unstable();
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        assert_eq!(phases, expected, "operation filter: {filter}");
        assert_eq!(page.total_size, expected.len() as u64, "operation filter: {filter}");
    }

    // The default order: newest first, then by id.
    let listed =
        store.list_operations(&query(&schemas::OPERATIONS, &format!("database_id = {database}"), "")).await;
    let mut expected: Vec<&Operation> =
        operations.iter().filter(|op| op.database_id == Some(database)).collect();
    expected.sort_by_key(|operation| (Reverse(operation.create_time), operation.id.to_string()));
    let expected: Vec<Operation> = expected.into_iter().cloned().collect();
    assert_eq!(listed.unwrap().items, expected);
    let filter = format!("database_id = {other_database} AND backup_id = {backup}");
    let elsewhere = store.list_operations(&query(&schemas::OPERATIONS, &filter, "")).await.unwrap();
    assert_eq!(elsewhere.items, [operations[4].clone()]);
}

/// order_by: each direction, several terms, missing values, the default order, and the
/// id as the final tie-breaker. Text orders byte-wise (PostgreSQL: `COLLATE "C"`).
pub(crate) async fn ordering(store: &dyn Store) {
    let run = Run::new();
    let mut backups = Vec::new();
    for index in 0..12_i64 {
        let mut backup = run.backup(&format!("order {index}"));
        backup.size_bytes = [3, 1, 2][index as usize % 3];
        backup.state = [BackupState::Ready, BackupState::Failed][index as usize % 2];
        // Groups of four share a create time; every third backup never expires.
        backup.create_time = base_time() + Duration::seconds(index / 4);
        backup.expire_time = (index % 3 != 0).then(|| base_time() + Duration::days(index % 5));
        store.create_backup(&backup).await.unwrap();
        backups.push(backup);
    }
    type Compare = fn(&Backup, &Backup) -> Ordering;
    let cases: [(&str, Compare); 11] = [
        ("", |a, b| b.create_time.cmp(&a.create_time)),
        ("create_time desc", |a, b| b.create_time.cmp(&a.create_time)),
        ("create_time", |a, b| a.create_time.cmp(&b.create_time)),
        ("size_bytes", |a, b| a.size_bytes.cmp(&b.size_bytes)),
        ("size_bytes asc", |a, b| a.size_bytes.cmp(&b.size_bytes)),
        ("size_bytes desc", |a, b| b.size_bytes.cmp(&a.size_bytes)),
        ("state, size_bytes desc", |a, b| {
            a.state.as_str().cmp(b.state.as_str()).then(b.size_bytes.cmp(&a.size_bytes))
        }),
        ("size_bytes, create_time desc", |a, b| {
            a.size_bytes.cmp(&b.size_bytes).then(b.create_time.cmp(&a.create_time))
        }),
        ("expire_time", |a, b| missing_above(a.expire_time, b.expire_time)),
        ("expire_time desc", |a, b| missing_above(b.expire_time, a.expire_time)),
        ("name desc", |a, b| b.name.as_str().cmp(a.name.as_str())),
    ];
    let filter = format!(r#"project_id = "{}""#, run.project());
    for (order_by, compare) in cases {
        let mut expected = backups.clone();
        expected.sort_by(|a, b| compare(a, b).then_with(|| a.id.to_string().cmp(&b.id.to_string())));
        let listed = store.list_backups(&backups_query(&filter, order_by)).await.unwrap();
        assert_eq!(ids(&listed.items, |b| b.id), ids(&expected, |b| b.id), "order_by: {order_by:?}");
    }
}

/// Compares optional values with a missing one above every present one.
fn missing_above<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => a.cmp(&b),
    }
}

/// Walking every page of 120 backups with page tokens: no duplicate, no gap, the same
/// total on every page, in the requested order.
pub(crate) async fn pagination(store: &dyn Store) {
    let run = Run::new();
    let mut backups = Vec::new();
    for index in 0..120_i64 {
        let mut backup = run.backup(&format!("page {index}"));
        // Groups of ten share a create time, so pages cut through ties.
        backup.create_time = base_time() + Duration::seconds(index / 10);
        backup.size_bytes = (index % 7) as u64;
        store.create_backup(&backup).await.unwrap();
        backups.push(backup);
    }
    let project = format!(r#"project_id = "{}""#, run.project());

    let mut newest_first = backups.clone();
    newest_first.sort_by_key(|backup| (Reverse(backup.create_time), backup.id.to_string()));
    let walked = walk(store, &project, "", 7, 120).await;
    assert_eq!(ids(&walked, |b| b.id), ids(&newest_first, |b| b.id));

    let filter = format!("{project} AND size_bytes >= 3");
    let mut large_first: Vec<Backup> =
        backups.iter().filter(|backup| backup.size_bytes >= 3).cloned().collect();
    large_first.sort_by_key(|backup| (Reverse(backup.size_bytes), backup.id.to_string()));
    let walked = walk(store, &filter, "size_bytes desc", 25, large_first.len() as u64).await;
    assert_eq!(ids(&walked, |b| b.id), ids(&large_first, |b| b.id));

    let walked = walk(store, &project, "create_time", 1000, 120).await;
    assert_eq!(walked.len(), 120);

    // An internal "everything" query has no page limit.
    let scope =
        Clause { field: "project_id", label_key: None, op: Op::Eq, value: Value::Text(run.project()) };
    let everything = store.list_backups(&ListQuery::all(vec![scope])).await.unwrap();
    assert_eq!(ids(&everything.items, |b| b.id), ids(&newest_first, |b| b.id));
    assert_eq!((everything.total_size, everything.next_page_token.as_str()), (120, ""));

    // Past the end: no items, the right total, no further token.
    let mut beyond = backups_query(&project, "");
    beyond.offset = 500;
    let page = store.list_backups(&beyond).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!((page.total_size, page.next_page_token.as_str()), (120, ""));

    // A filter matching nothing.
    let none =
        store.list_backups(&backups_query(&format!("{project} AND size_bytes > 6"), "")).await.unwrap();
    assert_eq!((none.items.len(), none.total_size, none.next_page_token.as_str()), (0, 0, ""));
}

/// Lists with page tokens until the last page, checking each page, and returns all items.
async fn walk(store: &dyn Store, filter: &str, order_by: &str, page_size: i32, total: u64) -> Vec<Backup> {
    let mut token = String::new();
    let mut items: Vec<Backup> = Vec::new();
    let expected_pages = total.div_ceil(page_size as u64).max(1);
    for page_number in 1..=expected_pages {
        let query = ListQuery::parse(&schemas::BACKUPS, page_size, &token, filter, order_by).unwrap();
        let page = store.list_backups(&query).await.unwrap();
        let context = format!("page {page_number} of {filter} / {order_by}");
        assert_eq!(page.total_size, total, "{context}");
        let expected_len = (total - items.len() as u64).min(page_size as u64);
        assert_eq!(page.items.len() as u64, expected_len, "{context}");
        for item in &page.items {
            assert!(!items.iter().any(|seen| seen.id == item.id), "{context}: {} seen twice", item.id);
        }
        items.extend(page.items);
        token = page.next_page_token;
        assert_eq!(token.is_empty(), page_number == expected_pages, "{context}: next_page_token {token:?}");
    }
    items
}

/// A query naming a field the resource does not have is refused, not ignored.
pub(crate) async fn foreign_fields_are_refused(store: &dyn Store) {
    let by_state = backups_query("state = BACKUP_STATE_READY", "");
    assert!(matches!(store.list_databases(&by_state).await, Err(Error::Backend(_))));
    let by_size = backups_query("", "size_bytes");
    assert!(matches!(store.list_operations(&by_size).await, Err(Error::Backend(_))));
    let by_engine = backups_query("engine = ENGINE_REDIS", "");
    assert!(matches!(store.list_destinations(&by_engine).await, Err(Error::Backend(_))));
}
