//! The MySQL engine against real throwaway MariaDB servers: a dump of the fixture
//! (every type and object) loads into another database and over itself with the same
//! checksums; bad data, bad logins, absent servers and tools, and cancelled loads fail
//! the way the engine promises, leaving the target as it was and no scratch database.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::MysqlEngine;
use crate::domain::ConnectionUri;
use crate::engine::sql_servers::MariaDbServer;
use crate::engine::tool::ToolPath;
use crate::engine::{DataStream, Engine, Error, LoadData};

/// How long background clean-up may take.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(30);

fn uri(text: &str) -> ConnectionUri {
    ConnectionUri::parse(text).unwrap()
}

fn start() -> MariaDbServer {
    tokio::task::block_in_place(MariaDbServer::start)
}

/// A server whose database `name` holds the fixture.
fn with_fixture(name: &str) -> MariaDbServer {
    let server = start();
    tokio::task::block_in_place(|| {
        server.create_database(name);
        server.load_fixture(name);
    });
    server
}

/// Dumps `database` into a file of `dir`; returns it and the tables the dump counted.
async fn dump(server: &MariaDbServer, database: &str, dir: &TempDir) -> (PathBuf, u64) {
    let engine = MysqlEngine::default();
    let mut snapshot = engine.snapshot(&uri(&server.url(database)), None, &|_| {}).await.unwrap();
    assert_eq!(snapshot.format, "mysql_sql");
    assert_eq!(snapshot.details["database"], database);
    assert!(snapshot.details["tool"].contains("10."), "{:?}", snapshot.details);
    let path = dir.path().join(format!("{database}.sql"));
    let mut file = tokio::fs::File::create(&path).await.unwrap();
    tokio::io::copy(&mut snapshot.body, &mut file).await.unwrap();
    let tables = snapshot.items_done.unwrap().load(Ordering::Relaxed);
    assert_eq!(snapshot.items_total, Some(tables));
    (path, tables)
}

async fn load(
    server: &MariaDbServer,
    database: &str,
    files: &[PathBuf],
) -> Result<crate::engine::Loaded, Error> {
    MysqlEngine::default()
        .load(&uri(&server.url("")), Some(database), LoadData::Files(files), &|_| {}, &|_, _, _| {})
        .await
}

fn checksums(server: &MariaDbServer, database: &str) -> std::collections::BTreeMap<String, String> {
    tokio::task::block_in_place(|| server.checksums(database))
}

/// Waits until the server holds no scratch database (`..._cellar_XXXXXXXX`).
async fn assert_no_scratch(server: &MariaDbServer) {
    let deadline = Instant::now() + CLEANUP_DEADLINE;
    loop {
        let databases = tokio::task::block_in_place(|| server.databases());
        if !databases.iter().any(|name| name.contains("_cellar_")) {
            return;
        }
        assert!(Instant::now() < deadline, "scratch databases left: {databases:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_loads_into_another_database_and_over_its_own() {
    let server = with_fixture("shop");
    let dir = tempfile::tempdir().unwrap();
    let (path, tables) = dump(&server, "shop", &dir).await;
    assert_eq!(tables, 4, "every_type, notes, plain_log, empty_table");
    let expected = checksums(&server, "shop");
    assert!(expected.keys().any(|key| key.starts_with("trigger:")), "{expected:?}");

    let last_progress = std::sync::Mutex::new((0, 0, 0));
    let engine = MysqlEngine::default();
    let report = |bytes, items, total| *last_progress.lock().unwrap() = (bytes, items, total);
    let loaded = engine
        .load(
            &uri(&server.url("")),
            Some("copy"),
            LoadData::Files(std::slice::from_ref(&path)),
            &|_| {},
            &report,
        )
        .await
        .unwrap();
    assert_eq!((loaded.items, loaded.method), (4, "mysql"));
    assert_eq!(*last_progress.lock().unwrap(), (std::fs::metadata(&path).unwrap().len(), 4, 4));
    assert_eq!(checksums(&server, "copy"), expected);

    // The target's own tables, views, routines, triggers and events all give way,
    // even a view named like one of the dump's tables.
    tokio::task::block_in_place(|| {
        server.sql(
            "shop",
            "DELETE FROM notes; CREATE TABLE extra (id INT); CREATE VIEW extra_view AS SELECT 1 AS one; \
             CREATE PROCEDURE stale_procedure() SELECT 1; CREATE EVENT stale_event ON SCHEDULE EVERY 1 DAY DISABLE DO \
             SELECT 1; CREATE TRIGGER stale_trigger AFTER INSERT ON extra FOR EACH ROW SET @x = 1;",
        );
        server.create_database("in_the_way");
        server.sql("in_the_way", "CREATE VIEW empty_table AS SELECT 1 AS id");
    });
    load(&server, "shop", std::slice::from_ref(&path)).await.unwrap();
    assert_eq!(checksums(&server, "shop"), expected);
    load(&server, "in_the_way", &[path]).await.unwrap();
    assert_eq!(checksums(&server, "in_the_way"), expected);
    assert_no_scratch(&server).await;

    let databases = engine.databases(&uri(&server.url(""))).await.unwrap();
    assert_eq!(databases, ["copy", "in_the_way", "shop"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_leaves_the_target_as_it_was() {
    let server = with_fixture("shop");
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = dump(&server, "shop", &dir).await;
    let expected = checksums(&server, "shop");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    let middle = lines.len() / 2;
    let failing = format!(
        "{}\nINSERT INTO no_such_table VALUES (1);\n{}\n",
        lines[..middle].join("\n"),
        lines[middle..].join("\n")
    );
    let error = load(&server, "shop", &[write("failing.sql", failing)]).await.unwrap_err();
    assert!(
        matches!(&error, Error::RestoreFailed(message) if message.contains("no_such_table") && message.contains("left as it was")),
        "{error}"
    );

    let truncated = write("truncated.sql", lines[..middle].join("\n"));
    let error = load(&server, "shop", &[truncated]).await.unwrap_err();
    assert!(matches!(&error, Error::Corrupt(message) if message.contains("truncated")), "{error}");

    let whole_server = text.replacen("\n--\n", "\nCREATE DATABASE elsewhere;\nUSE elsewhere;\n--\n", 1);
    let error = load(&server, "shop", &[write("all.sql", whole_server)]).await.unwrap_err();
    assert!(matches!(&error, Error::Corrupt(message) if message.contains("--databases")), "{error}");

    assert_eq!(checksums(&server, "shop"), expected);
    assert_no_scratch(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_files_cannot_run_commands_or_read_files_on_this_host() {
    let server = with_fixture("shop");
    let expected = checksums(&server, "shop");
    let dir = tempfile::tempdir().unwrap();
    let touched = dir.path().join("touched");
    let secret = dir.path().join("host-secret.txt");
    std::fs::write(&secret, "1\tread from the cellar host\n").unwrap();
    let attempts = [
        format!("CREATE TABLE t (a INT);\n\\! touch {}\n", touched.display()),
        format!("CREATE TABLE t (a INT);\nsystem touch {}\n", touched.display()),
        format!(
            "CREATE TABLE t (a INT, b TEXT);\nLOAD DATA LOCAL INFILE '{}' INTO TABLE t;\n",
            secret.display()
        ),
    ];
    for (n, attempt) in attempts.into_iter().enumerate() {
        let path = dir.path().join(format!("attempt-{n}.sql"));
        std::fs::write(&path, &attempt).unwrap();
        let error = load(&server, "shop", &[path]).await.unwrap_err();
        assert!(matches!(&error, Error::RestoreFailed(_)), "{attempt}: {error}");
        assert!(!touched.exists(), "{attempt}: a command ran on this host");
    }
    assert_eq!(checksums(&server, "shop"), expected);
    assert_no_scratch(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_failing_half_way_is_undone() {
    let server = with_fixture("shop");
    tokio::task::block_in_place(|| {
        server.sql("shop", "CREATE TABLE extra (id INT); INSERT INTO extra VALUES (7);")
    });
    let expected = checksums(&server, "shop");
    // The view loads in the scratch database, which sees shop.extra; once the tables
    // are swapped, shop.extra is gone and the view cannot be made in shop.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("needs_old_table.sql");
    std::fs::write(
        &path,
        "CREATE TABLE fresh (id INT);\nCREATE VIEW uses_old AS SELECT id FROM shop.extra;\n",
    )
    .unwrap();
    let error = load(&server, "shop", &[path]).await.unwrap_err();
    assert!(
        matches!(&error, Error::RestoreFailed(message) if message.contains("uses_old") || message.contains("extra")),
        "{error}"
    );
    assert!(
        error.to_string().contains("could not replace database shop")
            && error.to_string().contains("shop was left as it was"),
        "{error}"
    );
    assert_eq!(checksums(&server, "shop"), expected);
    assert_no_scratch(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logins_absent_databases_and_stopped_servers_fail_plainly() {
    let mut server = start();
    let engine = MysqlEngine::default();
    let wrong = server.url("").replace(server.password(), "wrong-secret");
    let error = engine.databases(&uri(&wrong)).await.unwrap_err();
    assert!(matches!(&error, Error::AuthFailed(_)), "{error}");
    assert!(!error.to_string().contains("wrong-secret") && error.to_string().contains("****"), "{error}");

    let error = engine.snapshot(&uri(&server.url("nowhere")), None, &|_| {}).await.unwrap_err();
    assert!(matches!(&error, Error::DatabaseNotFound(_)), "{error}");
    let error = engine.snapshot(&uri(&server.url("")), None, &|_| {}).await.unwrap_err();
    assert!(
        matches!(&error, Error::DatabaseNotFound(message) if message.contains("no database named")),
        "{error}"
    );

    let url = server.url("");
    tokio::task::block_in_place(|| server.stop());
    let error = engine.databases(&uri(&url)).await.unwrap_err();
    assert!(matches!(&error, Error::Unreachable(_)), "{error}");
    let error = engine.snapshot(&uri(&url), Some("shop"), &|_| {}).await.unwrap_err();
    assert!(matches!(&error, Error::Unreachable(_)), "{error}");
}

#[tokio::test]
async fn missing_tools_are_named_with_how_to_install_them() {
    let empty = tempfile::tempdir().unwrap();
    let engine = MysqlEngine::new(ToolPath::only(vec![empty.path().to_owned()]));
    let target = uri("mysql://cellar:secret@127.0.0.1:1/shop");
    let error = engine.snapshot(&target, None, &|_| {}).await.unwrap_err();
    assert!(
        matches!(&error, Error::ToolNotFound(message) if message.contains("apt-get install mariadb-client")),
        "{error}"
    );
    let error = engine.databases(&target).await.unwrap_err();
    assert!(matches!(&error, Error::ToolNotFound(_)), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_load_leaves_no_scratch_database() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.sql");
    std::fs::write(&path, "CREATE TABLE t (id INT);\nINSERT INTO t VALUES (1);\nSELECT SLEEP(5);\n").unwrap();
    let mut loading = Box::pin(load(&server, "shop", std::slice::from_ref(&path)));
    let deadline = Instant::now() + CLEANUP_DEADLINE;
    // Let the load run until its scratch database holds the table, then drop it.
    loop {
        tokio::select! {
            outcome = loading.as_mut() => panic!("the load ended before it was cancelled: {outcome:?}"),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let scratch = tokio::task::block_in_place(|| server.databases());
        if let Some(scratch) = scratch.iter().find(|name| name.contains("_cellar_")) {
            let tables = tokio::task::block_in_place(|| server.try_sql(scratch, "SHOW TABLES"));
            if tables.is_ok_and(|tables| tables.contains('t')) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the load never started");
    }
    drop(loading);
    assert_no_scratch(&server).await;
    assert!(!tokio::task::block_in_place(|| server.databases()).contains(&"shop".to_owned()));
}

#[test]
fn scratch_names_are_recognised() {
    assert!(super::is_scratch("shop_cellar_0a1b2c3d"));
    assert!(super::is_scratch(&crate::engine::sql::scratch_name("shop")));
    assert!(!super::is_scratch("shop_cellar_0a1b2c3"));
    assert!(!super::is_scratch("shop_cellar_0A1B2C3D"));
    assert!(!super::is_scratch("shop"));
}

/// A source that gives `data`, then stalls (never ends).
struct Stalling {
    data: Vec<u8>,
    given: usize,
}

impl tokio::io::AsyncRead for Stalling {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let count = buf.remaining().min(self.data.len() - self.given).min(4096);
        if count == 0 {
            return std::task::Poll::Pending;
        }
        let given = self.given;
        buf.put_slice(&self.data[given..given + count]);
        self.given += count;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Loads `text` as a stream into `database`.
async fn load_stream(
    server: &MariaDbServer,
    database: &str,
    text: &str,
) -> Result<crate::engine::Loaded, Error> {
    let spool_dir = tempfile::tempdir().unwrap();
    let mut body = text.as_bytes();
    let stream = DataStream {
        body: &mut body,
        spool_dir: spool_dir.path(),
        checked_length: None,
        from_catalog: false,
        reread: None,
    };
    MysqlEngine::default()
        .load(&uri(&server.url("")), Some(database), LoadData::Stream(stream), &|_| {}, &|_, _, _| {})
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_loads_whole_or_is_refused_before_it_reaches_another_database() {
    let server = with_fixture("shop");
    tokio::task::block_in_place(|| {
        server.create_database("other_db");
        server.sql("other_db", "CREATE TABLE t (id INT); INSERT INTO t VALUES (1);");
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = dump(&server, "shop", &dir).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let (shop, other) = (checksums(&server, "shop"), checksums(&server, "other_db"));

    let loaded = load_stream(&server, "copy", &text).await.unwrap();
    assert_eq!((loaded.items, loaded.method), (4, "mysql"));
    assert_eq!(checksums(&server, "copy"), shop);

    // The client never gets the statement that switches databases, nor what follows.
    let attempts = [
        "CREATE TABLE a (id INT);\nUSE other_db;\nINSERT INTO t VALUES (2);\n",
        "CREATE TABLE a (id INT);\n\\u other_db\nDROP TABLE t;\n",
        "CREATE TABLE a (id INT);\n  use `other_db`\nDROP TABLE t;\n",
    ];
    for attempt in attempts {
        let error = load_stream(&server, "shop", attempt).await.unwrap_err();
        assert!(
            matches!(&error, Error::Corrupt(message) if message.contains("line 2") && message.contains("--databases")),
            "{attempt}: {error}"
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    let truncated = lines[..lines.len() / 2].join("\n");
    let error = load_stream(&server, "shop", &truncated).await.unwrap_err();
    assert!(matches!(&error, Error::Corrupt(message) if message.contains("truncated")), "{error}");
    assert_eq!(checksums(&server, "shop"), shop);
    assert_eq!(checksums(&server, "other_db"), other);
    assert_no_scratch(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reports_bytes_as_it_loads_and_a_cancel_drops_its_scratch_database() {
    let server = with_fixture("shop");
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = dump(&server, "shop", &dir).await;
    let expected = checksums(&server, "shop");
    let mut text = std::fs::read(&path).unwrap();
    text.truncate(text.len() * 3 / 4);
    let mut body = Stalling { data: text, given: 0 };
    let fed = std::sync::atomic::AtomicU64::new(0);
    let report = |bytes, _, _| fed.store(bytes, Ordering::Relaxed);
    let stream = DataStream {
        body: &mut body,
        spool_dir: dir.path(),
        checked_length: None,
        from_catalog: false,
        reread: None,
    };
    let engine = MysqlEngine::default();
    let target = uri(&server.url(""));
    let mut loading =
        Box::pin(engine.load(&target, Some("shop"), LoadData::Stream(stream), &|_| {}, &report));
    let deadline = Instant::now() + CLEANUP_DEADLINE;
    // The stream stalls three quarters in: the load waits there, its progress moved.
    loop {
        tokio::select! {
            outcome = loading.as_mut() => panic!("the load ended on a stalled stream: {outcome:?}"),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let scratch = tokio::task::block_in_place(|| server.databases());
        let loading_tables = scratch.iter().find(|name| name.contains("_cellar_")).is_some_and(|scratch| {
            tokio::task::block_in_place(|| server.try_sql(scratch, "SHOW TABLES"))
                .is_ok_and(|tables| tables.contains("every_type"))
        });
        if loading_tables && fed.load(Ordering::Relaxed) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the load never started");
    }
    drop(loading);
    assert_no_scratch(&server).await;
    assert_eq!(checksums(&server, "shop"), expected);
}
