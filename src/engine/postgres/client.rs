//! Talking to a PostgreSQL server through its own client tools: which `pg_dump`,
//! `pg_restore` and `psql` to run, their connection environment, queries through
//! `psql`, and what their error output means.

use std::process::ExitStatus;
use std::sync::Arc;

use tokio::process::Command;

use crate::engine::Error;
use crate::engine::sql::{Endpoint, quote_identifier};
use crate::engine::tool::{self, Judge, Tail, Tool, ToolPath};

/// Where Debian and Ubuntu install each PostgreSQL major version's tools.
const VERSIONED_DIRS: &str = "/usr/lib/postgresql/*/bin";

/// How to get the tools, for `TOOL_NOT_FOUND` messages.
const INSTALL_HINT: &str = "install the PostgreSQL client tools (Debian and Ubuntu: apt-get install \
                            postgresql-client; for a newer major version, the PGDG package \
                            postgresql-client-NN) or put them on PATH";

/// Field separator of `psql` output (ASCII unit separator: never in names).
const SEPARATOR: &str = "\u{1f}";

/// The database connected to for server-wide work (creating, renaming, dropping
/// databases), tried in order.
const MAINTENANCE_DATABASES: &[&str] = &["postgres", "template1"];

/// A PostgreSQL server and the tools to reach it.
#[derive(Debug, Clone)]
pub(super) struct Server {
    /// The address and login.
    pub(super) endpoint: Endpoint,
    psql: Tool,
    tools: ToolPath,
    /// A database not to use for maintenance (the one being replaced).
    avoid: Option<String>,
}

impl Server {
    /// The server at `endpoint`, reached with the newest `psql` found on `tools`.
    pub(super) async fn new(endpoint: Endpoint, tools: &ToolPath) -> Result<Server, Error> {
        let psql = newest(tools, "psql").await?;
        Ok(Server { endpoint, psql, tools: tools.clone(), avoid: None })
    }

    /// The same server, doing its maintenance in another database than `database`
    /// (which is about to be renamed).
    pub(super) fn avoiding(&self, database: &str) -> Server {
        Server { avoid: Some(database.to_owned()), ..self.clone() }
    }

    /// The newest installed copy of `name` (`pg_dump`, `pg_restore`).
    pub(super) async fn tool(&self, name: &str) -> Result<Tool, Error> {
        newest(&self.tools, name).await
    }

    /// A command running `tool` against `database`, its login in its environment.
    pub(super) fn command(&self, tool: &Tool, database: &str) -> Command {
        self.logged_in(tool::command(&tool.path), database)
    }

    /// [`Server::command`] for `pg_dump` writing to a pipe ([`tool::dump_command`]).
    pub(super) fn dump_command(&self, tool: &Tool, database: &str) -> Command {
        self.logged_in(tool::dump_command(&tool.path), database)
    }

    fn logged_in(&self, mut command: Command, database: &str) -> Command {
        let endpoint = &self.endpoint;
        command.env("PGHOST", &endpoint.host).env("PGDATABASE", database).env("PGAPPNAME", "cellar");
        command.env("PGCONNECT_TIMEOUT", endpoint.params.get("connect_timeout").map_or("10", String::as_str));
        if let Some(port) = endpoint.port {
            command.env("PGPORT", port.to_string());
        }
        if let Some(user) = &endpoint.user {
            command.env("PGUSER", user);
        }
        if let Some(password) = &endpoint.password {
            command.env("PGPASSWORD", password);
        }
        for (param, variable) in [
            ("sslmode", "PGSSLMODE"),
            ("sslrootcert", "PGSSLROOTCERT"),
            ("sslcert", "PGSSLCERT"),
            ("sslkey", "PGSSLKEY"),
            ("options", "PGOPTIONS"),
            ("target_session_attrs", "PGTARGETSESSIONATTRS"),
        ] {
            if let Some(value) = endpoint.params.get(param) {
                command.env(variable, value);
            }
        }
        command
    }

    /// A tail for a tool's error output that hides this server's password.
    pub(super) fn tail(&self) -> Tail {
        Tail::new(self.endpoint.secrets())
    }

    /// Runs `sql` in `database` (statements stop at the first error) and returns the
    /// rows, each as its fields.
    pub(super) async fn query(&self, database: &str, sql: &str) -> Result<Vec<Vec<String>>, Error> {
        let mut command = self.command(&self.psql, database);
        command.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", SEPARATOR, "-f", "-"]);
        let tail = self.tail();
        let output =
            tool::run(command, Some(sql.as_bytes().to_vec()), &tail, &self.judge("psql", database)).await?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split(SEPARATOR).map(str::to_owned).collect())
            .collect())
    }

    /// Runs `sql` in the first maintenance database that accepts the connection.
    pub(super) async fn maintenance(&self, sql: &str) -> Result<Vec<Vec<String>>, Error> {
        let mut last = None;
        for database in MAINTENANCE_DATABASES {
            if self.avoid.as_deref() == Some(*database) {
                continue;
            }
            match self.query(database, sql).await {
                Err(Error::DatabaseNotFound(message)) => last = Some(Error::DatabaseNotFound(message)),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::DatabaseNotFound("no maintenance database".to_owned())))
    }

    /// Whether a database exists.
    pub(super) async fn database_exists(&self, name: &str) -> Result<bool, Error> {
        let sql = format!("SELECT count(*) FROM pg_database WHERE datname = {}", literal(name));
        Ok(self.maintenance(&sql).await?.first().and_then(|row| row.first()).is_some_and(|n| n != "0"))
    }

    /// Drops a database if it exists, ending its sessions first.
    pub(super) async fn drop_database(&self, name: &str, version_num: u32) -> Result<(), Error> {
        self.maintenance(&drop_database_sql(name, version_num)).await.map(drop)
    }

    /// How to read a tool's failure against `database`: the error output says whether
    /// the login, the address or the database was wrong; anything else is a dump or
    /// restore error.
    pub(super) fn judge(&self, tool: &'static str, database: &str) -> Judge {
        let shown = self.endpoint.shown.clone();
        let database = database.to_owned();
        Arc::new(move |status: ExitStatus, tail: &str| judge(tool, &shown, &database, status, tail))
    }
}

/// What pg_restore says of an archive that is cut short or damaged (lowercase).
const DAMAGED_ARCHIVE: &[&str] = &[
    "could not read from input file",
    "unexpected end of file",
    "possibly corrupt archive",
    "could not uncompress data",
    "could not decompress",
    "did not find magic string",
];

/// Classifies a failed PostgreSQL tool by its error output.
fn judge(tool: &str, shown: &str, database: &str, status: ExitStatus, tail: &str) -> Error {
    let said = if tail.is_empty() { format!("it exited with {status}") } else { tail.to_owned() };
    let message = format!("{tool} against {shown} (database {database}) failed: {said}");
    let lower = tail.to_ascii_lowercase();
    if [
        "password authentication failed",
        "no pg_hba.conf entry",
        "no password supplied",
        "authentication failed",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
        || (lower.contains("role \"") && lower.contains("does not exist"))
    {
        Error::AuthFailed(message)
    } else if lower.contains("database \"")
        && lower.contains("does not exist")
        && lower.contains("connection to server")
    {
        Error::DatabaseNotFound(message)
    } else if [
        "could not connect",
        "connection refused",
        "could not translate host name",
        "timeout expired",
        "server closed the connection unexpectedly",
        "connection to server",
        "no route to host",
        "terminating connection",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
        // Whatever else stops a dump, the source could not be read.
        || tool == "pg_dump"
    {
        Error::Unreachable(message)
    } else if tool == "pg_restore" && DAMAGED_ARCHIVE.iter().any(|needle| lower.contains(needle)) {
        Error::Corrupt(message)
    } else {
        Error::RestoreFailed(message)
    }
}

/// The newest installed copy of `name`, looking in PATH and under
/// `/usr/lib/postgresql/*/bin` (or only on the set tool path).
pub(super) async fn newest(tools: &ToolPath, name: &str) -> Result<Tool, Error> {
    let found = tools.find_all(&[name], &tool::glob_dirs(VERSIONED_DIRS)).await;
    best(&found).cloned().ok_or_else(|| {
        Error::ToolNotFound(format!(
            "{name} is not installed (looked in {}): {INSTALL_HINT}",
            tools.describe(VERSIONED_DIRS)
        ))
    })
}

/// The newest of `tools`; among equals the last found (a versioned directory's
/// binary rather than a wrapper on PATH).
pub(super) fn best(tools: &[Tool]) -> Option<&Tool> {
    tools.iter().max_by_key(|tool| version_key(&tool.version))
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').map(tool::leading_number).collect()
}

/// Checks that `pg_dump` can dump a server of `server_major`: a pg_dump older than the
/// server refuses to.
pub(super) fn check_dump_tool(dump: &Tool, server_major: u32) -> Result<(), Error> {
    if dump.major() >= server_major {
        return Ok(());
    }
    Err(Error::ToolTooOld(format!(
        "pg_dump {} ({}) is older than the server (PostgreSQL {server_major}); pg_dump {server_major} or newer \
         is needed: {INSTALL_HINT}",
        dump.version,
        dump.path.display()
    )))
}

/// The major version in a `server_version_num` (`150018` gives 15, `90624` gives 9).
pub(super) fn major_of(version_num: u32) -> u32 {
    version_num / 10_000
}

/// `DROP DATABASE IF EXISTS name`, ending its sessions first where the server can
/// (PostgreSQL 13 and newer).
pub(super) fn drop_database_sql(name: &str, version_num: u32) -> String {
    let force = if version_num >= 130_000 { " WITH (FORCE)" } else { "" };
    format!("DROP DATABASE IF EXISTS {}{force}", identifier(name))
}

/// A name as a PostgreSQL identifier.
pub(super) fn identifier(name: &str) -> String {
    quote_identifier(name, '"')
}

/// A text as a PostgreSQL string literal (standard strings: only `'` is doubled).
pub(super) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::path::PathBuf;

    fn failed(tool: &str, tail: &str) -> Error {
        judge(tool, "postgres://u:****@h/db", "db", ExitStatus::from_raw(256), tail)
    }

    #[test]
    fn failures_are_told_apart_by_what_the_tools_say() {
        let auth = "psql: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password \
                    authentication failed for user \"u\"";
        assert!(matches!(failed("psql", auth), Error::AuthFailed(_)));
        let refused = "psql: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused";
        assert!(matches!(failed("pg_dump", refused), Error::Unreachable(_)));
        let missing = "pg_dump: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database \
                       \"nope\" does not exist";
        assert!(matches!(failed("pg_dump", missing), Error::DatabaseNotFound(_)));
        let bad_sql = "psql:/tmp/x.sql:3: ERROR:  relation \"nope\" does not exist";
        assert!(matches!(failed("psql", bad_sql), Error::RestoreFailed(_)));
        let truncated = "pg_restore: error: could not read from input file: end of file";
        assert!(matches!(failed("pg_restore", truncated), Error::Corrupt(_)));
        let message = failed("pg_restore", "pg_restore: error: could not execute query").to_string();
        assert!(message.contains("pg_restore against postgres://u:****@h/db"), "{message}");
    }

    #[test]
    fn the_newest_tool_wins_and_an_old_pg_dump_is_refused() {
        let tool = |version: &str, path: &str| Tool { path: path.into(), version: version.into() };
        let tools =
            [tool("15.18", "/usr/bin/pg_dump"), tool("16.2", "/a"), tool("16.2", "/b"), tool("9.6.24", "/c")];
        assert_eq!(best(&tools).unwrap().path, PathBuf::from("/b"));
        assert!(check_dump_tool(&tools[0], 15).is_ok());
        let error = check_dump_tool(&tools[0], 17).unwrap_err();
        assert!(
            matches!(&error, Error::ToolTooOld(message) if message.contains("pg_dump 15.18") && message.contains("PostgreSQL 17"))
        );
        assert_eq!(major_of(150_018), 15);
        assert_eq!(major_of(90_624), 9);
    }
}
