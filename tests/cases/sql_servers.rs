//! The SQL server harness itself: a started PostgreSQL and MariaDB take the fixture into
//! two databases, whose checksums are equal, cover every table and object kind, and see
//! a single changed row; a copy made with the engine's own dump tool (new object ids, a
//! new database name) has the same checksums; the databases are listed and dropped; a
//! stopped server is unreachable. An existing server (as the `CELLAR_TEST_*_URL`
//! variables name one) gets prefixed databases, dropped with the harness value.

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::files::tool;

use crate::support::sql_servers::{MariaDbServer, PostgresServer};

/// The keys whose values differ between two checksum maps (or that only one has).
fn differing(left: &BTreeMap<String, String>, right: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = left.keys().chain(right.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|key| left.get(key) != right.get(key)).collect()
}

const PG_DUMP_HINT: &str =
    "pg_dump not found: run scripts/test (it installs it) or apt-get install postgresql-client";
const MARIADB_DUMP_HINT: &str =
    "mariadb-dump not found: run scripts/test (it installs it) or apt-get install mariadb-client";

/// The standard output of a dump tool; panics with its errors when it fails.
#[track_caller]
fn dump_output(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("a UTF-8 dump")
}

/// Asserts that `checksums` has every key of `expected`.
#[track_caller]
fn assert_has_keys(checksums: &BTreeMap<String, String>, expected: &[&str]) {
    let missing: Vec<&&str> = expected.iter().filter(|key| !checksums.contains_key(**key)).collect();
    assert!(missing.is_empty(), "checksums lack {missing:?}: {checksums:#?}");
}

#[test]
fn postgres_fixture_loads_alike_twice_and_checksums_see_one_changed_row() {
    let mut server = PostgresServer::start();
    assert!(server.version_major() >= 12, "PostgreSQL {} is too old", server.version_major());
    assert!(server.url("first").starts_with("postgres://"), "{}", server.url("first"));
    assert!(server.url("first").ends_with(&format!(":{}/first", server.port())), "{}", server.url("first"));
    for database in ["first", "second"] {
        server.create_database(database);
        server.load_fixture(database);
    }
    let databases = server.databases();
    assert!(
        ["first", "second"].iter().all(|name| databases.iter().any(|listed| listed == name)),
        "{databases:?}"
    );

    let first = server.checksums("first");
    let second = server.checksums("second");
    assert_eq!(differing(&first, &second), Vec::<String>::new(), "the same fixture, different checksums");
    let tables = server.psql(
        "first",
        "SELECT schemaname || '.' || tablename FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    let tables: Vec<&str> = tables.lines().collect();
    assert!(tables.len() >= 5, "{tables:?}");
    assert_has_keys(&first, &tables);
    for table in tables.iter().filter(|table| **table != "inventory.empty_log") {
        assert!(!first[*table].starts_with("0:"), "{table} is empty: {}", first[*table]);
    }
    assert!(first["public.every_type"].starts_with("3003:"), "{}", first["public.every_type"]);
    assert_has_keys(
        &first,
        &[
            "public.mood_counts",
            "sequence:public.ticket_numbers",
            "sequence:public.every_type_id_seq",
            "columns:public.every_type",
            "view:public.happy_rows",
            "view:inventory.item_names",
            "function:public.set_words_digest()",
            "trigger:public.every_type.every_type_words_digest",
            "enum:public.mood",
            "domain:public.positive_count",
            "extension:plpgsql",
            "large_objects",
        ],
    );
    assert!(first["large_objects"].starts_with("2:"), "{}", first["large_objects"]);
    let unusual =
        server.psql("first", "SELECT length(raw), words, count IS NULL FROM every_type WHERE id = 1");
    assert!(unusual.starts_with("256|emoji 😀🎉"), "{unusual}");
    assert!(unusual.contains("combining e\u{301}") && unusual.ends_with("|f"), "{unusual}");
    let nulls = server.psql(
        "first",
        "SELECT num_nulls(VARIADIC ARRAY[small::text, words, raw::text]) FROM every_type WHERE id = 3",
    );
    assert_eq!(nulls, "3");
    // PostgreSQL 14 and newer name the procedure's argument mode (`IN item_name text`).
    let procedure = first.keys().find(|key| key.starts_with("function:inventory.add_item("));
    assert!(procedure.is_some(), "no procedure in {first:#?}");

    // pg_dump's large objects keep their ids, but every other object gets new ones.
    let dump = dump_output(Command::new(tool("pg_dump", PG_DUMP_HINT)).arg(server.url("first")));
    server.create_database("copy");
    server.psql("copy", &dump);
    assert_eq!(differing(&first, &server.checksums("copy")), Vec::<String>::new(), "pg_dump copy differs");

    server.psql("second", "UPDATE every_type SET words = 'changed' WHERE id = 10");
    assert_eq!(differing(&first, &server.checksums("second")), ["public.every_type"]);
    server.psql("second", "SELECT lo_put(424201, 0, 'J')");
    assert_eq!(differing(&first, &server.checksums("second")), ["large_objects", "public.every_type"]);

    server.drop_database("second");
    assert!(!server.databases().contains(&"second".to_owned()));
    server.stop();
    assert!(server.try_psql("first", "SELECT 1").is_err(), "a stopped server still answers");
}

#[test]
fn mariadb_fixture_loads_alike_twice_and_checksums_see_one_changed_row() {
    let mut server = MariaDbServer::start();
    assert!(server.version().contains("MariaDB"), "{}", server.version());
    assert!(server.url("first").starts_with("mysql://"), "{}", server.url("first"));
    assert!(server.url("first").ends_with(&format!(":{}/first", server.port())), "{}", server.url("first"));
    for database in ["first", "second"] {
        server.create_database(database);
        server.load_fixture(database);
    }
    let databases = server.databases();
    assert!(
        ["first", "second"].iter().all(|name| databases.iter().any(|listed| listed == name)),
        "{databases:?}"
    );
    assert!(!databases.iter().any(|name| name == "mysql"), "{databases:?}");

    let first = server.checksums("first");
    let second = server.checksums("second");
    assert_eq!(differing(&first, &second), Vec::<String>::new(), "the same fixture, different checksums");
    let tables = server.sql(
        "first",
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
    );
    let tables: Vec<&str> = tables.lines().collect();
    assert_eq!(tables, ["empty_table", "every_type", "notes", "plain_log"]);
    assert_has_keys(&first, &tables);
    assert!(first["every_type"].starts_with("3003:"), "{}", first["every_type"]);
    assert!(first["empty_table"].starts_with("0:"), "{}", first["empty_table"]);
    let every_byte: String = (0..=255u8).map(|byte| format!("{byte:02X}")).collect();
    assert_eq!(server.sql("first", "SELECT HEX(raw) FROM every_type WHERE id = 1"), every_byte);
    let words = server.sql("first", "SELECT words FROM every_type WHERE id = 1");
    assert!(words.starts_with("emoji 😀🎉"), "{words}");
    assert_eq!(
        server.sql("first", "SELECT COUNT(*) FROM every_type WHERE id = 3 AND raw IS NULL AND doc IS NULL"),
        "1"
    );
    assert_has_keys(
        &first,
        &[
            "columns:every_type",
            "table:plain_log",
            "index:every_type.PRIMARY",
            "auto_increment:every_type",
            "auto_increment:notes",
            "view:happy_rows",
            "routine:PROCEDURE:add_note",
            "routine:FUNCTION:word_count",
            "trigger:every_type_digest_on_insert",
            "event:purge_empty_notes",
        ],
    );

    let mut mariadb_dump = Command::new(tool("mariadb-dump", MARIADB_DUMP_HINT));
    mariadb_dump
        .args(["--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", &server.port().to_string()])
        .args([
            "-u",
            server.user(),
            "--routines",
            "--events",
            "--triggers",
            "--single-transaction",
            "--hex-blob",
            "first",
        ])
        .env("MYSQL_PWD", server.password());
    let dump = dump_output(&mut mariadb_dump);
    server.create_database("copy");
    server.sql("copy", &dump);
    assert_eq!(
        differing(&first, &server.checksums("copy")),
        Vec::<String>::new(),
        "mariadb-dump copy differs"
    );

    server.sql("second", "UPDATE every_type SET words = 'changed' WHERE id = 10");
    assert_eq!(differing(&first, &server.checksums("second")), ["every_type"]);

    server.drop_database("second");
    assert!(!server.databases().contains(&"second".to_owned()));
    server.stop();
    assert!(server.try_sql("first", "SELECT 1").is_err(), "a stopped server still answers");
}

#[test]
fn an_existing_postgres_server_gets_prefixed_databases_that_go_on_drop() {
    let server = PostgresServer::start();
    let existing = PostgresServer::existing(&server.url("postgres"));
    existing.create_database("shared");
    existing.load_fixture("shared");
    assert_eq!(existing.databases(), ["shared"]);
    let real_name = server.databases().into_iter().find(|name| name.ends_with("_shared"));
    let real_name = real_name.unwrap_or_else(|| panic!("no prefixed database in {:?}", server.databases()));
    assert!(real_name.starts_with("cellar_test_"), "{real_name}");
    assert_eq!(existing.checksums("shared"), server.checksums(&real_name));
    assert!(existing.url("shared").ends_with("_shared"), "{}", existing.url("shared"));
    drop(existing);
    assert_eq!(server.databases(), ["postgres"]);
}

#[test]
fn an_existing_mariadb_server_gets_prefixed_databases_that_go_on_drop() {
    let server = MariaDbServer::start();
    let existing = MariaDbServer::existing(&server.url(""));
    existing.create_database("shared");
    existing.load_fixture("shared");
    assert_eq!(existing.databases(), ["shared"]);
    let real_name = server.databases().into_iter().find(|name| name.ends_with("_shared"));
    let real_name = real_name.unwrap_or_else(|| panic!("no prefixed database in {:?}", server.databases()));
    assert!(real_name.starts_with("cellar_test_"), "{real_name}");
    assert_eq!(existing.checksums("shared"), server.checksums(&real_name));
    drop(existing);
    assert_eq!(server.databases(), Vec::<String>::new());
}
