//! Throwaway PostgreSQL servers (as the `postgres` OS user when run as root), the
//! PostgreSQL fixture, and its content checksums.

use super::*;

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
