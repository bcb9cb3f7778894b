//! Throwaway MariaDB servers, the MariaDB fixture, and its content checksums.

use super::*;

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
