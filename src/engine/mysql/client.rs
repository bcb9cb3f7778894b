//! Talking to a MySQL or MariaDB server through its own client tools: which client
//! (`mariadb`, `mysql`) and dump tool (`mariadb-dump`, `mysqldump`) to run, their
//! connection arguments (the password only in `MYSQL_PWD`), queries through the
//! client, and what the tools' error output means.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;

use tokio::process::Command;

use crate::engine::Error;
use crate::engine::sql::{Endpoint, quote_identifier};
use crate::engine::tool::{self, Judge, Tail, Tool, ToolPath};

/// Where MySQL's own packages put their tools, besides PATH.
const USUAL_DIRS: &[&str] = &["/usr/bin", "/usr/local/mysql/bin"];

/// How to get the tools, for `TOOL_NOT_FOUND` messages.
const INSTALL_HINT: &str = "install the MariaDB client tools (Debian and Ubuntu: apt-get install \
                            mariadb-client; they dump MySQL servers too) or put mariadb-dump or \
                            mysqldump on PATH";

/// Whose tool or server something is: their versions are not comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    /// MariaDB (versions 10 and up).
    MariaDb,
    /// Oracle's MySQL (versions 5 to 9).
    Mysql,
}

impl Flavor {
    /// The flavor a `--version` line or a `VERSION()` value names.
    pub(super) fn of(text: &str) -> Flavor {
        if text.to_ascii_lowercase().contains("mariadb") { Flavor::MariaDb } else { Flavor::Mysql }
    }
}

/// An installed MySQL or MariaDB tool: where it is, whose it is and its release.
#[derive(Debug, Clone)]
pub(super) struct ToolRelease {
    /// The executable.
    pub(super) path: PathBuf,
    /// The release it belongs to (`10.11.6`, `8.0.36`); for old tools the `Distrib`
    /// version rather than the program's own (`Ver 10.19`).
    pub(super) version: String,
    /// MariaDB's or MySQL's.
    pub(super) flavor: Flavor,
}

impl ToolRelease {
    /// The major version (`8` of `8.0.36`).
    pub(super) fn major(&self) -> u32 {
        tool::leading_number(&self.version)
    }

    /// `mariadb-dump 10.11.6`, for messages and manifests.
    pub(super) fn describe(&self) -> String {
        format!("{} {}", file_name(&self.path), self.version)
    }
}

/// The release a `--version` line names: the word after `Distrib` when there is one
/// (`mysqldump  Ver 10.19 Distrib 10.11.6-MariaDB, ...` gives `10.11.6`), else the first
/// version (`mysqldump  Ver 8.0.36 for Linux` gives `8.0.36`).
pub(super) fn release_of(line: &str) -> String {
    let words: Vec<&str> =
        line.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty()).collect();
    let distrib = words.iter().position(|word| *word == "Distrib").and_then(|at| words.get(at + 1));
    match distrib {
        Some(word) => word.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect(),
        None => tool::parse_version(line).unwrap_or_default(),
    }
}

/// A MySQL or MariaDB server and the client to reach it.
#[derive(Debug, Clone)]
pub(super) struct Server {
    /// The address and login.
    pub(super) endpoint: Endpoint,
    client: Tool,
    tools: ToolPath,
}

impl Server {
    /// The server at `endpoint`, reached with the first `mariadb` (else `mysql`) client
    /// found on `tools`.
    pub(super) async fn new(endpoint: Endpoint, tools: &ToolPath) -> Result<Server, Error> {
        let found = tools.find_all(&["mariadb", "mysql"], &usual_dirs()).await;
        let client =
            found.into_iter().next().ok_or_else(|| not_found("the mariadb (or mysql) client", tools))?;
        Ok(Server { endpoint, client, tools: tools.clone() })
    }

    /// The dump tool: a MariaDB `mariadb-dump` (or `mysqldump`) when there is one, as
    /// it dumps MySQL and MariaDB servers of any version; else the newest MySQL
    /// `mysqldump`.
    pub(super) async fn dump_tool(&self) -> Result<ToolRelease, Error> {
        let found = self.tools.find_all(&["mariadb-dump", "mysqldump"], &usual_dirs()).await;
        let mut releases = Vec::new();
        for found in found {
            let mut command = tool::command(&found.path);
            command.arg("--version");
            let judge: Judge =
                Arc::new(|status, _tail: &str| Error::ToolNotFound(format!("exited with {status}")));
            let Ok(output) = tool::run(command, None, &Tail::default(), &judge).await else { continue };
            let line = String::from_utf8_lossy(&output).into_owned();
            releases.push(ToolRelease {
                path: found.path,
                version: release_of(&line),
                flavor: Flavor::of(&line),
            });
        }
        let mariadb = releases.iter().find(|release| release.flavor == Flavor::MariaDb);
        let newest = || releases.iter().max_by_key(|release| version_key(&release.version));
        mariadb.or_else(newest).cloned().ok_or_else(|| not_found("mariadb-dump (or mysqldump)", &self.tools))
    }

    /// A command running `program` against the server: `--no-defaults` (no option
    /// file may add a login or a target), the address, the user, utf8mb4; the password
    /// only in the environment.
    pub(super) fn command(&self, program: &std::path::Path) -> Command {
        self.connecting(tool::command(program))
    }

    /// [`Server::command`] for a dump tool writing to a pipe ([`tool::dump_command`]).
    pub(super) fn dump_command(&self, program: &std::path::Path) -> Command {
        self.connecting(tool::dump_command(program))
    }

    fn connecting(&self, mut command: Command) -> Command {
        let endpoint = &self.endpoint;
        command.arg("--no-defaults");
        if endpoint.host.starts_with('/') {
            command.arg("--protocol=SOCKET").arg(format!("--socket={}", endpoint.host));
        } else {
            command.arg("--protocol=TCP").arg(format!("--host={}", endpoint.host));
            command.arg(format!("--port={}", endpoint.port.unwrap_or(3306)));
        }
        if let Some(user) = &endpoint.user {
            command.arg(format!("--user={user}"));
        }
        command.arg("--default-character-set=utf8mb4");
        if let Some(password) = &endpoint.password {
            command.env("MYSQL_PWD", password);
        }
        command
    }

    /// A command running the client (for loads: statements from its standard input).
    pub(super) fn client_command(&self) -> Command {
        let mut command = self.command(&self.client.path);
        // The client takes a connection timeout; the dump tools do not.
        let timeout = self.endpoint.params.get("connect_timeout").map_or("10", String::as_str);
        command.arg(format!("--connect-timeout={timeout}"));
        command
    }

    /// The flags that keep a file fed to the client from reaching this host: no client
    /// command touching files or running programs (`\! cmd`, `system`, `\.`,
    /// `tee`: MariaDB's `--sandbox`, MySQL's `--system-command=OFF`) and no
    /// `LOAD DATA LOCAL INFILE` reading our files. A client without either is too old
    /// to load files it did not write.
    pub(super) async fn sandbox_flags(&self) -> Result<[&'static str; 2], Error> {
        let mut command = tool::command(&self.client.path);
        command.arg("--help");
        let judge: Judge =
            Arc::new(|status, _tail: &str| Error::ToolNotFound(format!("exited with {status}")));
        let help = tool::run(command, None, &Tail::default(), &judge).await?;
        let help = String::from_utf8_lossy(&help);
        let flag = if help.contains("--sandbox") {
            "--sandbox"
        } else if help.contains("--system-command") {
            "--system-command=OFF"
        } else {
            return Err(Error::ToolTooOld(format!(
                "{} ({}) cannot load an SQL file safely: it has no sandbox mode (MariaDB 10.5.25, 10.6.18, \
                 10.11.8, 11.0.6 or newer: --sandbox; MySQL 8.0.40 or newer: --system-command), which keeps the \
                 file from running commands on this host",
                self.client_name(),
                self.client.path.display()
            )));
        };
        Ok([flag, "--local-infile=0"])
    }

    /// The client's name (`mariadb`, `mysql`), for messages.
    pub(super) fn client_name(&self) -> String {
        file_name(&self.client.path)
    }

    /// A tail for a tool's error output that hides this server's password.
    pub(super) fn tail(&self) -> Tail {
        Tail::new(self.endpoint.secrets())
    }

    /// Runs `sql` (statements stop at the first error) in `database` (or in none) and
    /// returns the rows, each as its fields, unescaped.
    pub(super) async fn query(&self, database: Option<&str>, sql: &str) -> Result<Vec<Vec<String>>, Error> {
        let mut command = self.client_command();
        command.args(["--batch", "--skip-column-names"]);
        if let Some(database) = database {
            command.arg(format!("--database={database}"));
        }
        let judge = self.judge(&self.client_name(), database.unwrap_or(""), Stage::Query);
        let output = tool::run(command, Some(sql.as_bytes().to_vec()), &self.tail(), &judge).await?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .map(|line| line.split('\t').map(unescape).collect())
            .collect())
    }

    /// The first field of each row of `sql`.
    pub(super) async fn column(&self, database: Option<&str>, sql: &str) -> Result<Vec<String>, Error> {
        let rows = self.query(database, sql).await?;
        Ok(rows.into_iter().filter_map(|row| row.into_iter().next()).collect())
    }

    /// Whether a database exists.
    pub(super) async fn database_exists(&self, name: &str) -> Result<bool, Error> {
        let sql =
            format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}", literal(name));
        Ok(self.column(None, &sql).await?.first().is_some_and(|count| count != "0"))
    }

    /// Drops a database if it exists.
    pub(super) async fn drop_database(&self, name: &str) -> Result<(), Error> {
        self.query(None, &format!("DROP DATABASE IF EXISTS {}", identifier(name))).await.map(drop)
    }

    /// How to read a tool's failure against `database` at `stage`.
    pub(super) fn judge(&self, tool: &str, database: &str, stage: Stage) -> Judge {
        let tool = tool.to_owned();
        let shown = self.endpoint.shown.clone();
        let database = database.to_owned();
        Arc::new(move |status: ExitStatus, tail: &str| judge(&tool, &shown, &database, stage, status, tail))
    }
}

/// What a tool was doing when it failed, which decides what an unexplained failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// A query of Cellar's own, or a dump: an unexplained failure is the server's.
    Query,
    /// Loading data: an unexplained failure is a statement the server refused.
    Load,
}

/// Classifies a failed MySQL tool by its error output.
fn judge(tool: &str, shown: &str, database: &str, stage: Stage, status: ExitStatus, tail: &str) -> Error {
    let said = if tail.is_empty() { format!("it exited with {status}") } else { tail.to_owned() };
    let on = if database.is_empty() { String::new() } else { format!(" (database {database})") };
    let message = format!("{tool} against {shown}{on} failed: {said}");
    let lower = tail.to_ascii_lowercase();
    let says = |needles: &[&str]| needles.iter().any(|needle| lower.contains(needle));
    if says(&["access denied"]) {
        Error::AuthFailed(message)
    } else if says(&["can't connect", "unknown server host", "lost connection", "gone away"]) {
        Error::Unreachable(message)
    } else if says(&["unknown database"]) {
        Error::DatabaseNotFound(message)
    } else {
        match stage {
            Stage::Query => Error::Unreachable(message),
            Stage::Load => Error::RestoreFailed(message),
        }
    }
}

/// A field of the client's `--batch` output as it was: the client writes NUL, tab,
/// newline and backslash as `\0`, `\t`, `\n` and `\\`.
pub(super) fn unescape(field: &str) -> String {
    let mut text = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => text.push('\0'),
            Some('t') => text.push('\t'),
            Some('n') => text.push('\n'),
            Some(other) => text.push(other),
            None => text.push('\\'),
        }
    }
    text
}

/// Checks that `dump` can dump a server reporting `server_version` (`VERSION()`): a
/// MySQL `mysqldump` older than a MySQL server may miss what is new in it.
pub(super) fn check_dump_tool(dump: &ToolRelease, server_version: &str) -> Result<(), Error> {
    let server_flavor = Flavor::of(server_version);
    let server_major = tool::leading_number(server_version);
    if dump.flavor == Flavor::MariaDb || server_flavor == Flavor::MariaDb || dump.major() >= server_major {
        return Ok(());
    }
    Err(Error::ToolTooOld(format!(
        "{} ({}) is older than the server (MySQL {server_version}); mysqldump {server_major} or newer, or \
         mariadb-dump, is needed: {INSTALL_HINT}",
        dump.describe(),
        dump.path.display()
    )))
}

fn not_found(what: &str, tools: &ToolPath) -> Error {
    Error::ToolNotFound(format!(
        "{what} is not installed (looked in {}): {INSTALL_HINT}",
        tools.describe(&USUAL_DIRS.join(" and "))
    ))
}

/// The file name of a tool's path (`mariadb-dump`).
pub(super) fn file_name(path: &std::path::Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

pub(super) fn usual_dirs() -> Vec<PathBuf> {
    USUAL_DIRS.iter().map(PathBuf::from).collect()
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').map(tool::leading_number).collect()
}

/// A name as a MySQL identifier.
pub(super) fn identifier(name: &str) -> String {
    quote_identifier(name, '`')
}

/// A text as a MySQL string literal.
pub(super) fn literal(text: &str) -> String {
    crate::engine::sql::quote_literal(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn failed(stage: Stage, tail: &str) -> Error {
        judge("mariadb", "mysql://u:****@h/db", "db", stage, ExitStatus::from_raw(256), tail)
    }

    #[test]
    fn failures_are_told_apart_by_what_the_tools_say() {
        let denied = "ERROR 1045 (28000): Access denied for user 'u'@'localhost' (using password: YES)";
        assert!(matches!(failed(Stage::Query, denied), Error::AuthFailed(_)));
        let refused = "ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)";
        assert!(matches!(failed(Stage::Load, refused), Error::Unreachable(_)));
        let gone = "ERROR 2006 (HY000) at line 3: Server has gone away";
        assert!(matches!(failed(Stage::Load, gone), Error::Unreachable(_)));
        let missing =
            "mariadb-dump: Got error: 1049: \"Unknown database 'nope'\" when selecting the database";
        assert!(matches!(failed(Stage::Query, missing), Error::DatabaseNotFound(_)));
        let bad_sql = "ERROR 1064 (42000) at line 7: You have an error in your SQL syntax";
        assert!(matches!(failed(Stage::Load, bad_sql), Error::RestoreFailed(_)));
        assert!(matches!(failed(Stage::Query, bad_sql), Error::Unreachable(_)));
        let message = failed(Stage::Load, bad_sql).to_string();
        assert!(
            message.starts_with("mariadb against mysql://u:****@h/db (database db) failed: ERROR"),
            "{message}"
        );
    }

    #[test]
    fn releases_and_flavors_are_read_from_version_lines() {
        let cases = [
            (
                "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)",
                "10.11.19",
                Flavor::MariaDb,
            ),
            ("mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)", "5.7.44", Flavor::Mysql),
            (
                "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)",
                "8.0.36",
                Flavor::Mysql,
            ),
        ];
        for (line, version, flavor) in cases {
            assert_eq!(release_of(line), version, "{line}");
            assert_eq!(Flavor::of(line), flavor, "{line}");
        }
    }

    #[test]
    fn an_old_mysqldump_is_refused_for_a_newer_mysql_server() {
        let release = |version: &str, flavor| ToolRelease {
            path: "/usr/bin/mysqldump".into(),
            version: version.into(),
            flavor,
        };
        let old = release("5.7.44", Flavor::Mysql);
        let error = check_dump_tool(&old, "8.0.36").unwrap_err();
        assert!(
            matches!(&error, Error::ToolTooOld(message) if message.contains("mysqldump 5.7.44") && message.contains("MySQL 8.0.36")),
            "{error}"
        );
        assert!(check_dump_tool(&old, "5.7.40-log").is_ok());
        assert!(check_dump_tool(&old, "10.11.6-MariaDB").is_ok());
        assert!(check_dump_tool(&release("10.11.6", Flavor::MariaDb), "9.1.0").is_ok());
    }

    fn server(uri: &str) -> Server {
        let endpoint = Endpoint::parse(&crate::domain::ConnectionUri::parse(uri).unwrap()).unwrap();
        let client = Tool { path: "/usr/bin/mariadb".into(), version: "15.1".into() };
        Server { endpoint, client, tools: ToolPath::default() }
    }

    fn arguments(command: &Command) -> Vec<String> {
        command.as_std().get_args().map(|arg| arg.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_password_goes_in_the_environment_only() {
        let command = server("mysql://app:s3cret%21@db.example:3307/shop").client_command();
        let args = arguments(&command);
        assert_eq!(args[0], "--no-defaults", "{args:?}");
        for expected in ["--protocol=TCP", "--host=db.example", "--port=3307", "--user=app"] {
            assert!(args.contains(&expected.to_owned()), "{expected} in {args:?}");
        }
        assert!(args.contains(&"--default-character-set=utf8mb4".to_owned()), "{args:?}");
        assert!(!args.iter().any(|arg| arg.contains("s3cret")), "{args:?}");
        let password =
            command.as_std().get_envs().find(|(key, _)| *key == "MYSQL_PWD").and_then(|(_, value)| value);
        assert_eq!(password, Some(std::ffi::OsStr::new("s3cret!")));

        let socket = arguments(&server("mysql://app@%2Frun%2Fmysqld%2Fmysqld.sock/shop").client_command());
        assert!(socket.contains(&"--socket=/run/mysqld/mysqld.sock".to_owned()), "{socket:?}");
        assert!(!socket.iter().any(|arg| arg.starts_with("--host")), "{socket:?}");
    }

    #[test]
    fn batch_fields_are_unescaped() {
        assert_eq!(unescape(r"BEGIN\n\tSET a = 'x\\y';\nEND\0"), "BEGIN\n\tSET a = 'x\\y';\nEND\0");
        assert_eq!(unescape("plain"), "plain");
    }
}
