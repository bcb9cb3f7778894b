//! Throwaway PostgreSQL and MariaDB servers for tests, each on a free loopback port in a
//! temporary directory of its own, stopped and removed on drop; a fixture holding every
//! kind of value and schema object each engine has; and checksums that compare two
//! databases by content.
//!
//! When `CELLAR_TEST_POSTGRES_URL` or `CELLAR_TEST_MARIADB_URL` names an existing server
//! (`postgres://user:password@host:port/database`, `mysql://...`, the user allowed to
//! create databases), the harness uses it instead of starting one: the databases it
//! creates get a unique prefix (hidden from the caller) and are dropped on drop.
//!
//! This file is shared: the integration tests use it as `support::sql_servers`, and the
//! library's engine tests include it with `#[path]`, so it uses only std and tempfile.
//! SQL goes through the command-line clients (`psql`, `mariadb`) on standard input.

// The library's tests use only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to initialize its directory and accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to shut down after being asked before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often start-up and shutdown are looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many ports are tried when another process takes the probed one first.
const PORT_ATTEMPTS: usize = 5;

/// The environment variable naming an existing PostgreSQL server to use.
pub(crate) const POSTGRES_URL_VARIABLE: &str = "CELLAR_TEST_POSTGRES_URL";
/// The environment variable naming an existing MariaDB server to use.
pub(crate) const MARIADB_URL_VARIABLE: &str = "CELLAR_TEST_MARIADB_URL";

/// How to get PostgreSQL, for the messages of a missing program.
const POSTGRES_INSTALL_HINT: &str = "run scripts/test (it installs it) or apt-get install postgresql \
     postgresql-client; or set CELLAR_TEST_POSTGRES_URL to postgres://user:password@host:port/database \
     of a server where the user may create databases";

/// How to get MariaDB, for the messages of a missing program.
const MARIADB_INSTALL_HINT: &str = "run scripts/test (it installs it) or apt-get install mariadb-server \
     mariadb-client; or set CELLAR_TEST_MARIADB_URL to mysql://user:password@host:port/database of a \
     server where the user may create databases";

/// The user the harness creates in the servers it starts.
const USER: &str = "cellar";

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// A PostgreSQL server for one test: started by the harness (superuser `cellar` with a
/// random password, SCRAM authentication, durability off for speed), or an existing one
/// named by `CELLAR_TEST_POSTGRES_URL`.
pub(crate) struct PostgresServer {
    /// The server process and its directory; `None` for an existing server.
    local: Option<LocalServer>,
    /// Where to connect and as whom.
    connection: Connection,
    /// The `psql` that runs the SQL.
    psql: PathBuf,
}

impl PostgresServer {
    /// Starts a server (a few seconds: `initdb`, then start-up), or connects to the one
    /// named by `CELLAR_TEST_POSTGRES_URL`. Panics saying how to install PostgreSQL when
    /// it is missing.
    pub(crate) fn start() -> PostgresServer {
        if let Some(url) = std::env::var(POSTGRES_URL_VARIABLE).ok().filter(|url| !url.is_empty()) {
            return PostgresServer::existing(&url);
        }
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new().prefix("cellar-postgres-").tempdir().expect("temp dir");
        // initdb and postgres refuse to run as root: then the server runs as the
        // `postgres` user (Debian's package creates it), which must own its directory.
        let owner = if running_as_root() { Some(postgres_os_user()) } else { None };
        let password = random_token();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, format!("{password}\n")).expect("write the password file");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir(&socket_dir).expect("create the socket directory");
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), &password_file, &socket_dir] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|error| panic!("chown {} to postgres: {error}", path.display()));
            }
        }
        let data_dir = dir.path().join("data");

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data_dir)
            .args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", password_file.display()));
        run_as(&mut initdb, owner, dir.path());
        let output = initdb.output().unwrap_or_else(|error| panic!("cannot run initdb: {error}"));
        assert!(
            output.status.success(),
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let psql = bin.join("psql");
        let log = dir.path().join("server.log");
        let (server, port) = start_listening(
            "postgres",
            &log,
            // SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for clients to leave).
            "INT",
            |port| {
                let mut command = Command::new(bin.join("postgres"));
                command
                    .arg("-D")
                    .arg(&data_dir)
                    .args(["-p", &port.to_string()])
                    .arg("-k")
                    .arg(&socket_dir)
                    .args(["-c", "listen_addresses=127.0.0.1"])
                    .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
                    .args(["-c", "max_connections=50", "-c", "shared_buffers=16MB"]);
                run_as(&mut command, owner, dir.path());
                command
            },
            |port| {
                let connection = Connection::local(port, &password, "postgres");
                postgres_client(&psql, &connection, "postgres", "SELECT 1").is_ok()
            },
        );
        PostgresServer {
            local: Some(LocalServer { process: server, dir }),
            connection: Connection::local(port, &password, "postgres"),
            psql,
        }
    }

    /// The existing server named by `url` (as `CELLAR_TEST_POSTGRES_URL` would name it):
    /// databases created through this value get a unique prefix, and are dropped on drop.
    pub(crate) fn existing(url: &str) -> PostgresServer {
        let connection = Connection::parse(POSTGRES_URL_VARIABLE, url, &["postgres", "postgresql"], 5432);
        let psql = postgres_bin_dir_if_any()
            .map(|bin| bin.join("psql"))
            .filter(|psql| psql.is_file())
            .unwrap_or_else(|| program_on_path(&["psql"], "psql", POSTGRES_INSTALL_HINT));
        let server = PostgresServer { local: None, connection, psql };
        if let Err(error) = server.try_maintenance("SELECT 1") {
            panic!("cannot reach the PostgreSQL server of {POSTGRES_URL_VARIABLE}: {error}");
        }
        server
    }

    /// `postgres://cellar:PASSWORD@127.0.0.1:PORT/DATABASE` (the user and host of
    /// `CELLAR_TEST_POSTGRES_URL` when set).
    pub(crate) fn url(&self, database: &str) -> String {
        self.connection.url("postgres", &self.connection.database_name(database))
    }

    /// The password of the user in [`url`](Self::url).
    pub(crate) fn password(&self) -> &str {
        &self.connection.password
    }

    /// The user the harness connects as (`cellar` for a server it started).
    pub(crate) fn user(&self) -> &str {
        &self.connection.user
    }

    /// The port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        self.connection.port
    }

    /// The server's major version (15 for 15.4).
    pub(crate) fn version_major(&self) -> u32 {
        let number = self.maintenance("SHOW server_version_num");
        let number: u32 = number.trim().parse().unwrap_or_else(|_| panic!("server_version_num {number}"));
        number / 10_000
    }

    /// The server's log (empty for an existing server).
    pub(crate) fn log(&self) -> String {
        self.local.as_ref().map(|local| local.log()).unwrap_or_default()
    }

    /// Runs `sql` (any number of statements, each in its own transaction unless the SQL
    /// says otherwise) in `database` with `psql -X -q -At -v ON_ERROR_STOP=1`; returns
    /// its output without the last newline (rows one a line, columns split by `|`).
    /// Panics with psql's error output on failure.
    #[track_caller]
    pub(crate) fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`psql`](Self::psql), returning the error output on failure instead of panicking.
    pub(crate) fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let database = self.connection.database_name(database);
        postgres_client(&self.psql, &self.connection, &database, sql)
    }

    /// Creates an empty database (owned by the harness's user).
    #[track_caller]
    pub(crate) fn create_database(&self, name: &str) {
        let name = self.connection.database_name(name);
        self.maintenance(&format!("CREATE DATABASE {}", postgres_identifier(&name)));
    }

    /// Drops a database, disconnecting its clients; nothing happens when there is none.
    #[track_caller]
    pub(crate) fn drop_database(&self, name: &str) {
        let name = self.connection.database_name(name);
        let force = if self.version_major() >= 13 { " WITH (FORCE)" } else { "" };
        self.maintenance(&format!("DROP DATABASE IF EXISTS {}{force}", postgres_identifier(&name)));
    }

    /// The databases that are not templates, sorted (for an existing server: only those
    /// created here, without their prefix).
    pub(crate) fn databases(&self) -> Vec<String> {
        let names = self.maintenance("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1");
        self.connection.own_databases(&names)
    }

    /// Loads [`POSTGRES_FIXTURE`] into `database` (which should be empty).
    #[track_caller]
    pub(crate) fn load_fixture(&self, database: &str) {
        self.psql(database, POSTGRES_FIXTURE);
    }

    /// A fingerprint of `database`'s content, equal for two databases holding the same
    /// data and schema (whatever their names, object ids or physical layout):
    ///
    /// - `SCHEMA.TABLE` (every table and materialized view of every user schema):
    ///   `ROWS:MD5` of its rows as text, sorted;
    /// - `columns:SCHEMA.TABLE`, `constraint:...`, `index:...`, `trigger:...`, `view:...`,
    ///   `function:SCHEMA.NAME(ARGS)`, `enum:...`, `domain:...`: md5 of their definitions;
    /// - `sequence:SCHEMA.NAME`: its last value; `extension:NAME`: its version;
    ///   `schema:NAME`; `large_objects`: `COUNT:MD5` of their contents, sorted.
    pub(crate) fn checksums(&self, database: &str) -> BTreeMap<String, String> {
        let tables = self.psql(database, POSTGRES_TABLES);
        let mut script = String::from(POSTGRES_SESSION);
        for line in tables.lines() {
            let (key, quoted) = line.split_once('\t').unwrap_or_else(|| panic!("unexpected line {line:?}"));
            script.push_str(&format!(
                "SELECT {key} || E'\\t' || (SELECT count(*) || ':' || coalesce(md5(string_agg(row_::text, \
                 '|' ORDER BY (row_::text) COLLATE \"C\")), '') FROM {quoted} AS row_);\n",
                key = postgres_literal(key),
            ));
        }
        script.push_str(&postgres_definitions());
        key_value_lines(&self.psql(database, &script))
    }

    /// Stops the server (a fast shutdown) so that it is unreachable; panics for an
    /// existing server.
    pub(crate) fn stop(&mut self) {
        self.local_mut("stop").process.stop();
    }

    /// Kills the server (SIGKILL, as a crash would); panics for an existing server.
    pub(crate) fn kill(&mut self) {
        self.local_mut("kill").process.kill();
    }

    /// The started server, to `action` it; panics for an existing server.
    fn local_mut(&mut self, action: &str) -> &mut LocalServer {
        self.local.as_mut().unwrap_or_else(|| panic!("cannot {action} the server of {POSTGRES_URL_VARIABLE}"))
    }

    /// Runs SQL in the maintenance database (`postgres`, or that of the URL).
    #[track_caller]
    fn maintenance(&self, sql: &str) -> String {
        self.try_maintenance(sql).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`maintenance`](Self::maintenance), returning the error instead of panicking.
    fn try_maintenance(&self, sql: &str) -> Result<String, String> {
        postgres_client(&self.psql, &self.connection, &self.connection.maintenance_database, sql)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.local.is_some() {
            // The process, then the directory, go with `local`.
            return;
        }
        // No panic here: drop runs while tests unwind too.
        let version = self.try_maintenance("SHOW server_version_num").ok();
        let forced =
            version.and_then(|number| number.trim().parse::<u32>().ok()).is_some_and(|n| n >= 130_000);
        let force = if forced { " WITH (FORCE)" } else { "" };
        let names = self.try_maintenance("SELECT datname FROM pg_database").unwrap_or_default();
        for name in self.connection.own_databases(&names) {
            let name = self.connection.database_name(&name);
            let _ = self
                .try_maintenance(&format!("DROP DATABASE IF EXISTS {}{force}", postgres_identifier(&name)));
        }
    }
}

/// Runs `sql` with `psql` in `database`; the password goes in the environment.
fn postgres_client(
    psql: &Path,
    connection: &Connection,
    database: &str,
    sql: &str,
) -> Result<String, String> {
    let mut command = Command::new(psql);
    command
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", &connection.host, "-p", &connection.port.to_string(), "-U", &connection.user])
        .args(["-d", database])
        .env("PGPASSWORD", &connection.password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGCLIENTENCODING", "UTF8")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS");
    run_with_input(command, sql)
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with a server in it; panics saying how
/// to install one when there is none.
fn postgres_bin_dir() -> PathBuf {
    postgres_bin_dir_if_any().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): {POSTGRES_INSTALL_HINT}")
    })
}

/// The newest `/usr/lib/postgresql/VERSION/bin` holding initdb, postgres and psql.
fn postgres_bin_dir_if_any() -> Option<PathBuf> {
    let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            let complete = ["initdb", "postgres", "psql"].iter().all(|program| bin.join(program).is_file());
            complete.then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// The uid and gid of the `postgres` OS user.
fn postgres_os_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&"postgres") || fields.len() < 4 {
            return None;
        }
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    });
    ids.unwrap_or_else(|| {
        panic!(
            "PostgreSQL refuses to run as root and there is no postgres OS user to run it as: \
             {POSTGRES_INSTALL_HINT}, or run the tests as another user"
        )
    })
}

/// A PostgreSQL identifier, quoted.
fn postgres_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL string literal.
fn postgres_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Session settings that make the text form of values the same on every server.
const POSTGRES_SESSION: &str = "SET TimeZone = 'UTC';
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
";

/// The condition on a namespace `n` that keeps user schemas only.
const POSTGRES_USER_SCHEMA: &str = "n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'";

/// Lists `KEY<TAB>QUOTED_NAME` for every table and populated materialized view of the user
/// schemas that no extension owns.
const POSTGRES_TABLES: &str =
    "SELECT n.nspname || '.' || c.relname || E'\\t' || format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND c.relispopulated
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1";

/// The queries of the definitions part of [`PostgresServer::checksums`], each printing
/// `KEY<TAB>VALUE` lines.
fn postgres_definitions() -> String {
    let user = POSTGRES_USER_SCHEMA;
    let not_extension = |catalog: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = '{catalog}'::regclass \
             AND dep.objid = {oid} AND dep.deptype = 'e')"
        )
    };
    let tables = not_extension("pg_class", "c.oid");
    let functions = not_extension("pg_proc", "p.oid");
    let types = not_extension("pg_type", "t.oid");
    format!(
        "SELECT 'schema:' || n.nspname || E'\\t' || 'present' FROM pg_namespace n WHERE {user};
SELECT 'sequence:' || schemaname || '.' || sequencename || E'\\t' || coalesce(last_value::text, 'unset')
  FROM pg_sequences WHERE schemaname <> 'information_schema' AND schemaname NOT LIKE 'pg\\_%';
SELECT 'columns:' || n.nspname || '.' || c.relname || E'\\t' || md5(string_agg(
    a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
    || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
    || CASE WHEN a.attgenerated <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END
    || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
    ', ' ORDER BY a.attnum))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {user} AND {tables}
  GROUP BY n.nspname, c.relname;
SELECT 'constraint:' || n.nspname || '.' || c.relname || '.' || co.conname || E'\\t' || md5(pg_get_constraintdef(co.oid))
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE {user} AND {tables};
SELECT 'index:' || n.nspname || '.' || c.relname || E'\\t' || md5(pg_get_indexdef(c.oid))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('i', 'I') AND {user} AND {tables};
SELECT 'view:' || n.nspname || '.' || c.relname || E'\\t' || md5(pg_get_viewdef(c.oid))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('v', 'm') AND {user} AND {tables};
SELECT 'function:' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
    || E'\\t' || md5(pg_get_functiondef(p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE p.prokind IN ('f', 'p') AND {user} AND {functions};
SELECT 'trigger:' || n.nspname || '.' || c.relname || '.' || t.tgname || E'\\t' || md5(pg_get_triggerdef(t.oid))
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE NOT t.tgisinternal AND {user};
SELECT 'enum:' || n.nspname || '.' || t.typname || E'\\t' || md5(string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
  WHERE {user} AND {types}
  GROUP BY n.nspname, t.typname;
SELECT 'domain:' || n.nspname || '.' || t.typname || E'\\t' || md5(format_type(t.typbasetype, t.typtypmod)
    || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
    || coalesce(' default ' || t.typdefault, '')
    || coalesce((SELECT string_agg(' ' || pg_get_constraintdef(co.oid), '' ORDER BY co.conname)
                 FROM pg_constraint co WHERE co.contypid = t.oid), ''))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE t.typtype = 'd' AND {user} AND {types};
SELECT 'extension:' || extname || E'\\t' || extversion FROM pg_extension;
SELECT 'large_objects' || E'\\t' || count(*) || ':' || coalesce(md5(string_agg(content, ',' ORDER BY content)), '')
  FROM (SELECT md5(lo_get(oid)) AS content FROM pg_largeobject_metadata) AS large_object;
"
    )
}

/// The PostgreSQL fixture: every kind of value (numeric of large precision, integers at
/// their limits, NaN and infinities, json and jsonb, arrays, all 256 byte values in a
/// bytea, emoji, CJK and combining characters, NULL in every nullable column,
/// timestamptz, uuid, an enum, a domain, identity, serial and generated columns), a
/// sequence advanced by hand and by defaults, a view, a materialized view, a plpgsql
/// trigger function, a procedure, large objects referenced from a table, pgcrypto and
/// hstore (when installed), a second schema with a foreign key into the first, an empty
/// table, and a few thousand rows.
pub(crate) const POSTGRES_FIXTURE: &str = r#"
SET TimeZone = 'UTC';

DO $$
DECLARE
    wanted text;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['pgcrypto', 'hstore'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = wanted);
        BEGIN
            EXECUTE format('CREATE EXTENSION IF NOT EXISTS %I', wanted);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'extension % not created: %', wanted, SQLERRM;
        END;
    END LOOP;
END
$$;

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ébahi 😮');
CREATE DOMAIN positive_count AS integer CHECK (VALUE > 0);

CREATE SEQUENCE ticket_numbers START 100 INCREMENT 7;
SELECT nextval('ticket_numbers') FROM generate_series(1, 5);

CREATE TABLE every_type (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial_number bigserial NOT NULL,
    small smallint,
    normal integer,
    big bigint,
    exact numeric(60, 30),
    unbounded numeric,
    single real,
    double double precision,
    doc json,
    docb jsonb,
    ints integer[],
    texts text[],
    raw bytea,
    words text,
    words_length integer GENERATED ALWAYS AS (length(words)) STORED,
    at timestamptz,
    day date,
    span interval,
    token uuid,
    feeling mood,
    count positive_count,
    flag boolean,
    ticket integer DEFAULT nextval('ticket_numbers'),
    words_digest text
);
CREATE INDEX every_type_by_day ON every_type (day, feeling);

CREATE FUNCTION set_words_digest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.words_digest := md5(coalesce(NEW.words, ''));
    RETURN NEW;
END
$$;
CREATE TRIGGER every_type_words_digest BEFORE INSERT OR UPDATE ON every_type
    FOR EACH ROW EXECUTE FUNCTION set_words_digest();

INSERT INTO every_type (small, normal, big, exact, unbounded, single, double, doc, docb, ints, texts, raw,
                        words, at, day, span, token, feeling, count, flag)
VALUES
    (-32768, -2147483648, -9223372036854775808,
     '-123456789012345678901234567890.123456789012345678901234567890', 'NaN', 'NaN', 'Infinity',
     '{"a": [1, 2.5, null, "x"],   "b": {"c": true}}', '{"ünï": "cödé 😀", "n": 1e100, "nested": [[], {}]}',
     ARRAY[1, NULL, -3], ARRAY['a', NULL, 'with "quotes", commas, {braces} and \backslash'],
     (SELECT decode(string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY b), 'hex') FROM generate_series(0, 255) AS b),
     E'emoji 😀🎉👩‍👩‍👧, CJK 漢字かなカナ한글, combining e\u0301 a\u0310, RTL שלום, zero width \u200b, tab\tand newline\nsecond line',
     '2024-02-29 23:59:59.999999+05:30', '0001-01-01', '1 year 2 months 3 days 04:05:06.789',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ébahi 😮', 1, true),
    (32767, 2147483647, 9223372036854775807,
     '999999999999999999999999999999.999999999999999999999999999999', '0.000000000000000000000000000000000001',
     '-Infinity', '-Infinity', '[]', 'null', '{}', '{}', '\x', '', 'infinity', '9999-12-31', '-1 day',
     '00000000-0000-0000-0000-000000000000', 'sad', 2147483647, false);

INSERT INTO every_type DEFAULT VALUES;

INSERT INTO every_type (small, normal, big, exact, unbounded, single, double, doc, docb, ints, texts, raw,
                        words, at, day, span, token, feeling, count, flag)
SELECT g % 32767, g, g::bigint * 1000000007, g / 7.0, g::numeric ^ 3 / 13, g / 3.0, g * pi(),
       json_build_object('n', g), jsonb_build_object('n', g, 'even', g % 2 = 0), ARRAY[g, g + 1],
       ARRAY['row ' || g], decode(md5(g::text), 'hex'), 'row ' || g || ' ✓',
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 minute', date '2020-01-01' + g,
       g * interval '1 second', md5(g::text)::uuid, (ARRAY['sad', 'ok', 'happy']::mood[])[g % 3 + 1], g,
       g % 2 = 0
FROM generate_series(1, 3000) AS g;

CREATE TABLE documents (id integer PRIMARY KEY, name text NOT NULL, content oid);
-- Fixed large object ids: they are per database, and pg_dump keeps them.
INSERT INTO documents VALUES
    (1, 'hello', lo_from_bytea(424201, convert_to('hello, large object ✓', 'UTF8'))),
    (2, 'every byte', lo_from_bytea(424202,
        (SELECT decode(string_agg(lpad(to_hex(b % 256), 2, '0'), '' ORDER BY b), 'hex')
         FROM generate_series(0, 100000) AS b))),
    (3, 'none', NULL);

CREATE VIEW happy_rows AS SELECT id, words, words_length FROM every_type WHERE feeling = 'happy';
CREATE MATERIALIZED VIEW mood_counts AS SELECT feeling, count(*) AS how_many FROM every_type GROUP BY feeling;

CREATE SCHEMA inventory;
CREATE TABLE inventory.items (
    id serial PRIMARY KEY,
    every_type_id integer REFERENCES public.every_type (id) ON DELETE CASCADE,
    name text NOT NULL UNIQUE,
    price numeric(12, 2) CHECK (price >= 0)
);
INSERT INTO inventory.items (every_type_id, name, price)
SELECT g, 'item ' || g, g * 1.25 FROM generate_series(1, 500) AS g;
CREATE TABLE inventory.empty_log (at timestamptz, message text);
CREATE VIEW inventory.item_names AS
    SELECT i.id, i.name, e.words FROM inventory.items AS i JOIN public.every_type AS e ON e.id = i.every_type_id;
CREATE FUNCTION inventory.item_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM inventory.items $$;
CREATE PROCEDURE inventory.add_item(item_name text) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inventory.items (name, price) VALUES (item_name, 0);
END
$$;
CALL inventory.add_item('added by a procedure');

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hstore') THEN
        CREATE TABLE inventory.attributes (item_id integer PRIMARY KEY, pairs hstore);
        INSERT INTO inventory.attributes
        SELECT g, hstore(ARRAY['size', 'colour'], ARRAY[g::text, 'red']) FROM generate_series(1, 50) AS g;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto') THEN
        CREATE TABLE inventory.hashes AS SELECT g AS id, digest(g::text, 'sha256') AS sha256
            FROM generate_series(1, 50) AS g;
    END IF;
END
$$;
"#;

// ---------------------------------------------------------------------------------------
// MariaDB

/// A MariaDB server for one test: started by the harness (user `cellar`@`%` and
/// `cellar`@`localhost` with a random password and every privilege, binary log off,
/// durability relaxed for speed), or an existing one named by `CELLAR_TEST_MARIADB_URL`.
pub(crate) struct MariaDbServer {
    /// The server process and its directory; `None` for an existing server.
    local: Option<LocalServer>,
    /// Where to connect and as whom.
    connection: Connection,
    /// The `mariadb` (or `mysql`) client.
    client: PathBuf,
}

impl MariaDbServer {
    /// Starts a server (a few seconds: `mariadb-install-db`, then start-up), or connects to
    /// the one named by `CELLAR_TEST_MARIADB_URL`. Panics saying how to install MariaDB
    /// when it is missing.
    pub(crate) fn start() -> MariaDbServer {
        let client = program_on_path(&["mariadb", "mysql"], "the mariadb client", MARIADB_INSTALL_HINT);
        if let Some(url) = std::env::var(MARIADB_URL_VARIABLE).ok().filter(|url| !url.is_empty()) {
            return MariaDbServer::existing(&url);
        }
        let server_program = program_on_path(&["mariadbd", "mysqld"], "mariadbd", MARIADB_INSTALL_HINT);
        let install_db = program_on_path(
            &["mariadb-install-db", "mysql_install_db"],
            "mariadb-install-db",
            MARIADB_INSTALL_HINT,
        );
        let dir = tempfile::Builder::new().prefix("cellar-mariadb-").tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        // mariadbd refuses to run as root unless told to.
        let as_root: &[&str] = if running_as_root() { &["--user=root"] } else { &[] };

        // A temporary directory of its own (for the bootstrap server too): mariadbd
        // deletes every `#sql*` file in its tmpdir when it starts, which would pull the
        // temporary tables from under the other servers of a parallel test run if they
        // shared /tmp.
        let tmp_dir = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp_dir).expect("the server's tmpdir");
        let output = Command::new(&install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()))
            .arg(format!("--tmpdir={}", tmp_dir.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(as_root)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", install_db.display()));
        assert!(
            output.status.success(),
            "{} failed ({}):\n{}{}",
            install_db.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let socket = dir.path().join("sock");
        let log = dir.path().join("server.log");
        let root_sql = |sql: &str| {
            let mut command = Command::new(&client);
            command
                .args(["--no-defaults", "--batch", "-N", "--default-character-set=utf8mb4", "-u", "root"])
                .arg(format!("--socket={}", socket.display()));
            run_with_input(command, sql)
        };
        let (server, port) = start_listening(
            "mariadbd",
            &log,
            "TERM",
            |port| {
                let mut command = Command::new(&server_program);
                command
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", data_dir.display()))
                    .arg(format!("--socket={}", socket.display()))
                    .arg(format!("--port={port}"))
                    .arg(format!("--pid-file={}", dir.path().join("mariadbd.pid").display()))
                    .arg(format!("--log-error={}", log.display()))
                    .arg(format!("--tmpdir={}", tmp_dir.display()))
                    .args(["--bind-address=127.0.0.1", "--skip-log-bin", "--skip-name-resolve"])
                    .args(["--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=64M"])
                    .args(["--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"])
                    .args(as_root)
                    .current_dir(dir.path());
                command
            },
            |_port| root_sql("SELECT 1").is_ok(),
        );
        let password = random_token();
        let grants = ["'cellar'@'%'", "'cellar'@'localhost'"].map(|account| {
            format!(
                "CREATE USER {account} IDENTIFIED BY '{password}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;\n"
            )
        });
        if let Err(error) = root_sql(&grants.concat()) {
            panic!("cannot create the cellar user: {error}");
        }
        MariaDbServer {
            local: Some(LocalServer { process: server, dir }),
            connection: Connection::local(port, &password, ""),
            client,
        }
    }

    /// The existing server named by `url` (as `CELLAR_TEST_MARIADB_URL` would name it):
    /// databases created through this value get a unique prefix, and are dropped on drop.
    pub(crate) fn existing(url: &str) -> MariaDbServer {
        let client = program_on_path(&["mariadb", "mysql"], "the mariadb client", MARIADB_INSTALL_HINT);
        let connection = Connection::parse(MARIADB_URL_VARIABLE, url, &["mysql", "mariadb"], 3306);
        let server = MariaDbServer { local: None, connection, client };
        if let Err(error) = server.run(None, "SELECT 1") {
            panic!("cannot reach the MariaDB server of {MARIADB_URL_VARIABLE}: {error}");
        }
        server
    }

    /// `mysql://cellar:PASSWORD@127.0.0.1:PORT/DATABASE` (the user and host of
    /// `CELLAR_TEST_MARIADB_URL` when set).
    pub(crate) fn url(&self, database: &str) -> String {
        self.connection.url("mysql", &self.connection.database_name(database))
    }

    /// The password of the user in [`url`](Self::url).
    pub(crate) fn password(&self) -> &str {
        &self.connection.password
    }

    /// The user the harness connects as (`cellar` for a server it started).
    pub(crate) fn user(&self) -> &str {
        &self.connection.user
    }

    /// The port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        self.connection.port
    }

    /// `SELECT VERSION()`, e.g. `10.11.6-MariaDB-0+deb12u1`.
    pub(crate) fn version(&self) -> String {
        self.run(None, "SELECT VERSION()").unwrap_or_else(|error| panic!("{error}"))
    }

    /// The server's error log (empty for an existing server).
    pub(crate) fn log(&self) -> String {
        self.local.as_ref().map(|local| local.log()).unwrap_or_default()
    }

    /// Runs `sql` (any number of statements; `DELIMITER` works) in `database` with
    /// `mariadb --batch -N` over TCP; returns its output without the last newline (rows
    /// one a line, columns split by tabs, special characters escaped). Panics with the
    /// client's error output on failure.
    #[track_caller]
    pub(crate) fn sql(&self, database: &str, sql: &str) -> String {
        self.try_sql(database, sql).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`sql`](Self::sql), returning the error output on failure instead of panicking.
    pub(crate) fn try_sql(&self, database: &str, sql: &str) -> Result<String, String> {
        self.run(Some(&self.connection.database_name(database)), sql)
    }

    /// Creates an empty utf8mb4 database.
    #[track_caller]
    pub(crate) fn create_database(&self, name: &str) {
        let name = mariadb_identifier(&self.connection.database_name(name));
        let sql = format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci");
        self.run(None, &sql).unwrap_or_else(|error| panic!("{error}"));
    }

    /// Drops a database; nothing happens when there is none.
    #[track_caller]
    pub(crate) fn drop_database(&self, name: &str) {
        let name = mariadb_identifier(&self.connection.database_name(name));
        self.run(None, &format!("DROP DATABASE IF EXISTS {name}")).unwrap_or_else(|error| panic!("{error}"));
    }

    /// The databases, sorted, without the system ones (information_schema,
    /// performance_schema, mysql, sys; for an existing server: only those created here,
    /// without their prefix).
    pub(crate) fn databases(&self) -> Vec<String> {
        let sql = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN \
                   ('information_schema', 'performance_schema', 'mysql', 'sys') ORDER BY 1";
        let names = self.run(None, sql).unwrap_or_else(|error| panic!("{error}"));
        self.connection.own_databases(&names)
    }

    /// Loads [`MARIADB_FIXTURE`] into `database` (which should be empty).
    #[track_caller]
    pub(crate) fn load_fixture(&self, database: &str) {
        self.sql(database, &mariadb_fixture());
    }

    /// A fingerprint of `database`'s content, equal for two databases holding the same
    /// data and schema whatever their names:
    ///
    /// - `TABLE` (every base table): `ROWS:MD5` of its rows (each column `QUOTE`d, rows
    ///   sorted);
    /// - `columns:TABLE`, `table:TABLE` (engine and collation), `index:TABLE.NAME`,
    ///   `view:NAME`, `routine:TYPE:NAME`, `parameters:TYPE:NAME`, `trigger:NAME`,
    ///   `event:NAME`: md5 of their definitions, with the database name taken out;
    /// - `auto_increment:TABLE`: its next AUTO_INCREMENT value.
    pub(crate) fn checksums(&self, database: &str) -> BTreeMap<String, String> {
        let tables = self.sql(database, &format!("{MARIADB_SESSION}{MARIADB_TABLES}"));
        let mut script = String::from(MARIADB_SESSION);
        for line in tables.lines() {
            let (table, columns) =
                line.split_once('\t').unwrap_or_else(|| panic!("unexpected line {line:?}"));
            script.push_str(&format!(
                "SELECT {key}, (SELECT CONCAT(COUNT(*), ':', COALESCE(MD5(GROUP_CONCAT(row_hash ORDER BY row_hash \
                 SEPARATOR '')), '')) FROM (SELECT MD5(CONCAT_WS(',', {columns})) AS row_hash FROM {table}) AS rows_);\n",
                key = mariadb_literal(table),
                table = mariadb_identifier(table),
            ));
        }
        script.push_str(MARIADB_DEFINITIONS);
        key_value_lines(&self.sql(database, &script))
    }

    /// Stops the server (a clean shutdown) so that it is unreachable; panics for an
    /// existing server.
    pub(crate) fn stop(&mut self) {
        self.local_mut("stop").process.stop();
    }

    /// Kills the server (SIGKILL, as a crash would); panics for an existing server.
    pub(crate) fn kill(&mut self) {
        self.local_mut("kill").process.kill();
    }

    /// The started server, to `action` it; panics for an existing server.
    fn local_mut(&mut self, action: &str) -> &mut LocalServer {
        self.local.as_mut().unwrap_or_else(|| panic!("cannot {action} the server of {MARIADB_URL_VARIABLE}"))
    }

    /// Runs `sql` over TCP in `database` (the real name), or in none.
    fn run(&self, database: Option<&str>, sql: &str) -> Result<String, String> {
        let connection = &self.connection;
        let mut command = Command::new(&self.client);
        command
            .args(["--no-defaults", "--batch", "-N", "--default-character-set=utf8mb4", "--protocol=TCP"])
            .args(["-h", &connection.host, "-P", &connection.port.to_string(), "-u", &connection.user])
            .arg("--connect-timeout=10")
            .env("MYSQL_PWD", &connection.password);
        if let Some(database) = database {
            command.arg(format!("--database={database}"));
        }
        run_with_input(command, sql)
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if self.local.is_some() {
            // The process, then the directory, go with `local`.
            return;
        }
        // No panic here: drop runs while tests unwind too.
        let names = self.run(None, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA").unwrap_or_default();
        for name in self.connection.own_databases(&names) {
            let name = mariadb_identifier(&self.connection.database_name(&name));
            let _ = self.run(None, &format!("DROP DATABASE IF EXISTS {name}"));
        }
    }
}

/// A MariaDB identifier, quoted.
fn mariadb_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A MariaDB string literal.
fn mariadb_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Session settings that make the text form of values the same on every server, and
/// let GROUP_CONCAT hold a whole table's row hashes.
const MARIADB_SESSION: &str = "SET SESSION time_zone = '+00:00';
SET SESSION group_concat_max_len = 1073741824;
";

/// Lists `TABLE<TAB>QUOTE(col1), QUOTE(col2)...` for every base table.
const MARIADB_TABLES: &str = "SELECT c.TABLE_NAME,
       GROUP_CONCAT(CONCAT('QUOTE(`', REPLACE(c.COLUMN_NAME, '`', '``'), '`)') ORDER BY c.ORDINAL_POSITION SEPARATOR ', ')
FROM information_schema.COLUMNS AS c
JOIN information_schema.TABLES AS t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
GROUP BY c.TABLE_NAME
ORDER BY c.TABLE_NAME;
";

/// The queries of the definitions part of [`MariaDbServer::checksums`], each printing
/// `KEY<TAB>VALUE` rows. `@schema` is the database name as it appears in definitions.
const MARIADB_DEFINITIONS: &str = "SET @schema = CONCAT('`', DATABASE(), '`.');
SELECT CONCAT('table:', TABLE_NAME), CONCAT_WS(' ', ENGINE, TABLE_COLLATION)
  FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE';
SELECT CONCAT('columns:', TABLE_NAME), MD5(GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE,
         COALESCE(COLUMN_DEFAULT, '-'), EXTRA, COALESCE(COLLATION_NAME, '-')) ORDER BY ORDINAL_POSITION SEPARATOR ', '))
  FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() GROUP BY TABLE_NAME;
SELECT CONCAT('index:', TABLE_NAME, '.', INDEX_NAME), MD5(GROUP_CONCAT(CONCAT_WS(' ', COLUMN_NAME, NON_UNIQUE,
         COALESCE(SUB_PART, '-'), INDEX_TYPE) ORDER BY SEQ_IN_INDEX SEPARATOR ', '))
  FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() GROUP BY TABLE_NAME, INDEX_NAME;
SELECT CONCAT('auto_increment:', TABLE_NAME), AUTO_INCREMENT
  FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL;
SELECT CONCAT('view:', TABLE_NAME), MD5(REPLACE(VIEW_DEFINITION, @schema, ''))
  FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE();
SELECT CONCAT('routine:', ROUTINE_TYPE, ':', ROUTINE_NAME), MD5(CONCAT_WS('|', COALESCE(DTD_IDENTIFIER, '-'),
         REPLACE(ROUTINE_DEFINITION, @schema, ''), IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE))
  FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE();
SELECT CONCAT('parameters:', ROUTINE_TYPE, ':', SPECIFIC_NAME), MD5(GROUP_CONCAT(CONCAT_WS(' ',
         COALESCE(PARAMETER_MODE, 'RETURNS'), COALESCE(PARAMETER_NAME, '-'), DTD_IDENTIFIER)
         ORDER BY ORDINAL_POSITION SEPARATOR ', '))
  FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = DATABASE() GROUP BY ROUTINE_TYPE, SPECIFIC_NAME;
SELECT CONCAT('trigger:', TRIGGER_NAME), MD5(CONCAT_WS('|', EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_TIMING,
         ACTION_ORDER, REPLACE(ACTION_STATEMENT, @schema, '')))
  FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE();
SELECT CONCAT('event:', EVENT_NAME), MD5(CONCAT_WS('|', REPLACE(EVENT_DEFINITION, @schema, ''), EVENT_TYPE,
         COALESCE(INTERVAL_VALUE, '-'), COALESCE(INTERVAL_FIELD, '-'), STATUS, ON_COMPLETION))
  FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE();
";

/// The MariaDB fixture: every kind of value (DECIMAL(30,10), integers at their limits,
/// DOUBLE and FLOAT, JSON, all 256 byte values in a BLOB and a VARBINARY, utf8mb4 text
/// with emoji, NULL in every nullable column, DATETIME, TIMESTAMP, DATE, TIME, YEAR,
/// ENUM (whose labels MariaDB keeps in utf8mb3: a 4-byte character would come back from
/// SHOW CREATE TABLE as `?`), SET, BIT), AUTO_INCREMENT tables (one with a foreign key, one MyISAM), a view,
/// a stored procedure and a function, triggers, a disabled event, and a few thousand
/// rows. Built by [`mariadb_fixture`].
pub(crate) const MARIADB_FIXTURE: &str = r#"
SET time_zone = '+00:00';
SET SESSION max_recursive_iterations = 100000;

CREATE TABLE every_type (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tiny TINYINT,
    small SMALLINT,
    medium MEDIUMINT,
    normal INT,
    big BIGINT,
    unsigned_big BIGINT UNSIGNED,
    exact DECIMAL(30, 10),
    approximate DOUBLE,
    single FLOAT,
    doc JSON,
    raw BLOB,
    fixed VARBINARY(256),
    words TEXT,
    at DATETIME(6),
    stamp TIMESTAMP(6) NULL DEFAULT NULL,
    day DATE,
    clock TIME(3),
    year_only YEAR,
    feeling ENUM('sad', 'ok', 'happy', 'ébahi'),
    colours SET('red', 'green', 'blue'),
    flag BOOLEAN,
    bits BIT(8),
    words_digest CHAR(32),
    KEY every_type_by_day (day, feeling),
    UNIQUE KEY every_type_unique_normal (normal)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE notes (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    every_type_id INT NULL,
    body VARCHAR(200) NOT NULL,
    CONSTRAINT notes_every_type FOREIGN KEY (every_type_id) REFERENCES every_type (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci AUTO_INCREMENT=1000;

CREATE TABLE plain_log (
    id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    message VARCHAR(100)
) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4;

CREATE TABLE empty_table (id INT PRIMARY KEY, label VARCHAR(10)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

DELIMITER //
CREATE TRIGGER every_type_digest_on_insert BEFORE INSERT ON every_type FOR EACH ROW
BEGIN
    SET NEW.words_digest = MD5(COALESCE(NEW.words, ''));
END//
CREATE TRIGGER every_type_digest_on_update BEFORE UPDATE ON every_type FOR EACH ROW
BEGIN
    SET NEW.words_digest = MD5(COALESCE(NEW.words, ''));
END//
CREATE PROCEDURE add_note(IN note_text VARCHAR(200))
BEGIN
    INSERT INTO notes (every_type_id, body) VALUES (NULL, note_text);
END//
CREATE FUNCTION word_count(text_in TEXT) RETURNS INT DETERMINISTIC
BEGIN
    IF text_in IS NULL OR text_in = '' THEN
        RETURN 0;
    END IF;
    RETURN LENGTH(text_in) - LENGTH(REPLACE(text_in, ' ', '')) + 1;
END//
DELIMITER ;

INSERT INTO every_type (tiny, small, medium, normal, big, unsigned_big, exact, approximate, single, doc, raw, fixed,
                        words, at, stamp, day, clock, year_only, feeling, colours, flag, bits)
VALUES
    (-128, -32768, -8388608, -2147483648, -9223372036854775808, 18446744073709551615,
     '-12345678901234567890.0123456789', -1.7976931348623157e308, 3.4e38,
     '{"a": [1, 2.5, null, "x"], "ünï": "cödé 😀", "nested": [[], {}]}',
     UNHEX('ALL_BYTES'), UNHEX('ALL_BYTES'),
     'emoji 😀🎉👩‍👩‍👧, CJK 漢字かなカナ한글, combining é, tab\tand newline\nsecond line, quote '' and backslash \\',
     '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', '1000-01-01', '-838:59:59.000', 1901,
     'ébahi', 'red,blue', TRUE, b'10100101'),
    (127, 32767, 8388607, 2147483647, 9223372036854775807, 0,
     '99999999999999999999.9999999999', 2.2250738585072014e-308, -3.4e38, '[]', '', '',
     '', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '9999-12-31', '838:59:59.000', 2155,
     'sad', '', FALSE, b'0');

INSERT INTO every_type () VALUES ();

INSERT INTO every_type (tiny, small, medium, normal, big, unsigned_big, exact, approximate, single, doc, raw, fixed,
                        words, at, stamp, day, clock, year_only, feeling, colours, flag, bits)
WITH RECURSIVE g (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 3000)
SELECT n % 128, n, n * 100, n, n * 1000000007, n * 3, n / 7, n * PI(), n / 3, JSON_OBJECT('n', n, 'even', n % 2 = 0),
       UNHEX(MD5(n)), UNHEX(SHA1(n)), CONCAT('row ', n, ' ✓'),
       TIMESTAMPADD(MINUTE, n, '2020-01-01 00:00:00'), TIMESTAMPADD(SECOND, n, '2020-01-01 00:00:00'),
       DATE_ADD('2020-01-01', INTERVAL n DAY), SEC_TO_TIME(n), 1901 + n % 255,
       ELT(n % 3 + 1, 'sad', 'ok', 'happy'), ELT(n % 4 + 1, '', 'red', 'green,blue', 'red,green,blue'),
       n % 2 = 0, n % 256
FROM g;

CALL add_note('first note 🎉');
CALL add_note('second note');
INSERT INTO notes (every_type_id, body) SELECT id, CONCAT('note for ', id) FROM every_type WHERE id % 10 = 0;

INSERT INTO plain_log (message) VALUES ('one'), ('two'), (NULL);

CREATE VIEW happy_rows AS SELECT id, words, word_count(words) AS words_counted FROM every_type WHERE feeling = 'happy';

CREATE EVENT purge_empty_notes ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE
    DO DELETE FROM notes WHERE body = '';
"#;

/// [`MARIADB_FIXTURE`] with its `ALL_BYTES` placeholder replaced by the hex of the 256
/// byte values.
pub(crate) fn mariadb_fixture() -> String {
    let all_bytes: String = (0..=255u8).map(|byte| format!("{byte:02X}")).collect();
    MARIADB_FIXTURE.replace("ALL_BYTES", &all_bytes)
}

// ---------------------------------------------------------------------------------------
// Shared parts

/// A server process the harness started, and its directory. The process goes first
/// (fields drop in order), then the directory.
struct LocalServer {
    /// The server process.
    process: Daemon,
    /// Its data directory, socket, log (and for PostgreSQL, password file).
    dir: TempDir,
}

impl LocalServer {
    /// The server's log.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// A server child process, asked to stop (then killed if it does not) on drop.
struct Daemon {
    /// `None` once stopped.
    child: Option<Child>,
    /// The signal that asks for a clean, quick shutdown (`INT`, `TERM`).
    stop_signal: &'static str,
}

impl Daemon {
    /// Sends the stop signal and waits for the exit; kills the process when it is not
    /// gone within [`STOP_TIMEOUT`]. Does nothing when it is already stopped.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // The `kill` program, as std sends no other signal than SIGKILL.
        let signalled = Command::new("kill")
            .arg(format!("-{}", self.stop_signal))
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the process (SIGKILL) and waits for it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited.
    fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the server `spawn(port)` makes, on a free port, its output appended to `log`,
/// and waits until `ready(port)`. A free port can be taken by another process between
/// the probe and the bind: then it starts again on another port. Panics with the log
/// when the server exits or does not become ready in time.
fn start_listening(
    name: &str,
    log: &Path,
    stop_signal: &'static str,
    spawn: impl Fn(u16) -> Command,
    ready: impl Fn(u16) -> bool,
) -> (Daemon, u16) {
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port();
        let _ = std::fs::remove_file(log);
        // Appending, as the server may open the same file itself (`--log-error`).
        let output = File::options().create(true).append(true).open(log).expect("open the log");
        let mut command = spawn(port);
        command.stdin(Stdio::null()).stdout(output.try_clone().expect("the log")).stderr(output);
        let child = command.spawn().unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        let mut server = Daemon { child: Some(child), stop_signal };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if server.exited() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                if text.contains("Address already in use") {
                    break;
                }
                panic!("{name} exited at start-up; its log:\n{text}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && ready(port) {
                return (server, port);
            }
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("{name} was not ready within {START_TIMEOUT:?}; its log:\n{text}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    panic!("{name} found no free port in {PORT_ATTEMPTS} attempts")
}

/// Where a server is and how to log in; for an existing server, also the prefix of the
/// databases the harness creates.
struct Connection {
    /// The host name or address.
    host: String,
    /// The TCP port.
    port: u16,
    /// The user to log in as.
    user: String,
    /// Its password (decoded).
    password: String,
    /// The database to connect to for server-wide statements.
    maintenance_database: String,
    /// Put before every database name given to the harness: empty for a server it
    /// started, unique for an existing one.
    prefix: String,
}

impl Connection {
    /// The server the harness started.
    fn local(port: u16, password: &str, maintenance_database: &str) -> Connection {
        Connection {
            host: "127.0.0.1".to_owned(),
            port,
            user: USER.to_owned(),
            password: password.to_owned(),
            maintenance_database: maintenance_database.to_owned(),
            prefix: String::new(),
        }
    }

    /// An existing server from `SCHEME://USER:PASSWORD@HOST:PORT/DATABASE` (the value of
    /// the environment variable `variable`).
    fn parse(variable: &str, url: &str, schemes: &[&str], default_port: u16) -> Connection {
        let invalid = |why: &str| -> ! {
            panic!("{variable} must look like {}://user:password@host:port/database: {why}", schemes[0])
        };
        let (scheme, rest) = url.split_once("://").unwrap_or_else(|| invalid("no scheme"));
        if !schemes.contains(&scheme) {
            invalid(&format!("scheme {scheme}"));
        }
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let database = database.split('?').next().unwrap_or_default();
        let (credentials, address) = authority.rsplit_once('@').unwrap_or_else(|| invalid("no user"));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().unwrap_or_else(|_| invalid("bad port"))),
            None => (address, default_port),
        };
        Connection {
            host: host.to_owned(),
            port,
            user: percent_decode(user),
            password: percent_decode(password),
            maintenance_database: percent_decode(database),
            prefix: format!("cellar_test_{}_", &random_token()[..12]),
        }
    }

    /// The real name of the database the harness calls `name`.
    fn database_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The databases of `names` (one a line) that are the harness's, as it calls them.
    fn own_databases(&self, names: &str) -> Vec<String> {
        names.lines().filter_map(|name| name.strip_prefix(&self.prefix)).map(str::to_owned).collect()
    }

    /// `SCHEME://USER:PASSWORD@HOST:PORT/DATABASE`.
    fn url(&self, scheme: &str, database: &str) -> String {
        format!(
            "{scheme}://{}:{}@{}:{}/{}",
            percent_encode(&self.user),
            percent_encode(&self.password),
            self.host,
            self.port,
            percent_encode(database)
        )
    }
}

/// Runs `command` with `input` on its standard input; returns its standard output
/// without the last newline, or what it printed (with its exit status) when it fails.
fn run_with_input(mut command: Command, input: &str) -> Result<String, String> {
    let program = Path::new(command.get_program()).display().to_string();
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| format!("cannot run {program}: {error}"))?;
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let input = input.to_owned();
    // Written from another thread: a client may print before it has read everything.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|error| format!("{program} failed: {error}"))?;
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        return Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned());
    }
    Err(format!("{program} failed ({}):\n{}{stdout}", output.status, String::from_utf8_lossy(&output.stderr)))
}

/// `KEY<TAB>VALUE` lines as a map; panics on other lines and on a key seen twice.
fn key_value_lines(output: &str) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    for line in output.lines().filter(|line| !line.is_empty()) {
        let (key, value) =
            line.split_once('\t').unwrap_or_else(|| panic!("unexpected checksum line {line:?}"));
        let previous = entries.insert(key.to_owned(), value.to_owned());
        assert!(previous.is_none(), "checksum key {key} seen twice");
    }
    entries
}

/// The first of `names` found on PATH (or in the sbin directories, where servers live);
/// panics naming `what` and `hint` when none is.
fn program_on_path(names: &[&str], what: &str, hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{what} is not installed ({} not found): {hint}", names.join(" or ")))
}

/// Makes `command` run as `owner` (uid, gid) when given, in `dir`. std sets the ids in
/// the child before it runs the program, so the child is the server itself (`runuser`
/// would stand between them and not pass on every signal).
fn run_as(command: &mut Command, owner: Option<(u32, u32)>, dir: &Path) {
    command.current_dir(dir);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective uid).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// 32 random lowercase hex digits (std's hasher keys are random per process and differ
/// for every `RandomState`).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// `text` with every byte but unreserved URL characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `text` with its `%XX` sequences decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes.get(index + 1..index + 3).and_then(|hex| std::str::from_utf8(hex).ok());
        match (bytes[index], escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
