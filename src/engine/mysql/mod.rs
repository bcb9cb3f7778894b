//! The MySQL and MariaDB engine: logical backups of one database with `mariadb-dump`
//! (or MySQL's `mysqldump`) as SQL text, loads with the `mariadb` (or `mysql`) client
//! into a scratch database whose tables are swapped in only once it loaded whole.
//!
//! Dumps name no database (no `--databases`: no `CREATE DATABASE` or `USE`), so one
//! loads into a database of any name. See [`load`] for how loading keeps the target
//! whole, and [`swap`] for how the loaded copy takes the target's place.

mod client;
mod load;
mod swap;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use async_trait::async_trait;

use self::client::{Server, Stage, check_dump_tool, literal};
use super::sql::Endpoint;
use super::tool::{Tool, ToolPath, spawn_counting};
use super::{CheckedFile, Engine, Error, LoadData, Loaded, PhaseSink, ProgressSink, Snapshot};
use crate::domain::{ConnectionUri, EngineKind};

/// What the dump tool's `--verbose` output says once for each table whose rows it
/// reads.
const TABLE_DUMP_LINE: &str = "-- Retrieving rows";

/// The server's own schemas, never backed up.
const SYSTEM_DATABASES: &[&str] = &["information_schema", "performance_schema", "mysql", "sys"];

/// The MySQL and MariaDB engine.
#[derive(Debug, Clone, Default)]
pub struct MysqlEngine {
    tools: ToolPath,
}

impl MysqlEngine {
    /// The engine, finding its tools on `tools`.
    pub fn new(tools: ToolPath) -> Self {
        MysqlEngine { tools }
    }
}

#[async_trait]
impl Engine for MysqlEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Mysql
    }

    /// Every `mariadb`/`mysql` client and `mariadb-dump`/`mysqldump` found.
    async fn prepare(&self) -> Vec<Tool> {
        let dirs = client::usual_dirs();
        let (clients, dumps) = futures::join!(
            self.tools.find_all(&["mariadb", "mysql"], &dirs),
            self.tools.find_all(&["mariadb-dump", "mysqldump"], &dirs),
        );
        clients.into_iter().chain(dumps).collect()
    }

    /// `SHOW DATABASES` less the system schemas and scratch databases Cellar left
    /// behind (`..._cellar_` and 8 hex digits).
    async fn databases(&self, uri: &ConnectionUri) -> Result<Vec<String>, Error> {
        let server = Server::new(Endpoint::parse(uri)?, &self.tools).await?;
        let mut names: Vec<String> = server
            .column(None, "SHOW DATABASES")
            .await?
            .into_iter()
            .filter(|name| !SYSTEM_DATABASES.contains(&name.as_str()) && !is_scratch(name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Phases: `connecting` (server facts, tool choice), `dumping`. The body is the
    /// dump tool's SQL text, in one consistent transaction for InnoDB tables, with
    /// routines, triggers and events, binary values in hex; it ends only once the
    /// tool exited cleanly. Bytes are estimated from the tables' data and index
    /// lengths, items are tables.
    async fn snapshot(
        &self,
        uri: &ConnectionUri,
        database: Option<&str>,
        phase: PhaseSink<'_>,
    ) -> Result<Snapshot, Error> {
        phase("connecting");
        let endpoint = Endpoint::parse(uri)?;
        let database = endpoint.database_to_use(database)?;
        let server = Server::new(endpoint, &self.tools).await?;
        let facts_sql = format!(
            "SELECT VERSION(), (SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {schema}), (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = \
             {schema} AND TABLE_TYPE <> 'VIEW')",
            schema = literal(&database)
        );
        let facts = server.query(Some(&database), &facts_sql).await?.into_iter().next().unwrap_or_default();
        let field = |index: usize| facts.get(index).cloned().unwrap_or_default();
        let server_version = field(0);
        let dump = server.dump_tool().await?;
        check_dump_tool(&dump, &server_version)?;

        let mut command = server.dump_command(&dump.path);
        command.args([
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--verbose",
        ]);
        if dump.flavor == client::Flavor::Mysql
            && dump.major() >= 8
            && client::Flavor::of(&server_version) == client::Flavor::MariaDb
        {
            // MySQL 8's mysqldump asks MariaDB for statistics it does not keep.
            command.arg("--column-statistics=0");
        }
        command.arg("--").arg(&database);
        let judge = server.judge(&client::file_name(&dump.path), &database, Stage::Query);
        let (body, tables_done) =
            spawn_counting(command, server.tail(), judge, |line: &str| line.starts_with(TABLE_DUMP_LINE))?;
        phase("dumping");
        let details =
            BTreeMap::from([("database".to_owned(), database.clone()), ("tool".to_owned(), dump.describe())]);
        Ok(Snapshot {
            server_version,
            format: "mysql_sql",
            format_version: dump.version.clone(),
            bytes_total: field(1).parse().ok(),
            bytes_total_exact: false,
            items_total: field(2).parse().ok(),
            details,
            items_done: Some(tables_done),
            produced_here: true,
            body: Box::pin(body),
        })
    }

    /// Phases: for files `verifying` (each file is SQL text, a dump is whole and names
    /// no database), then `connecting`, `loading` (into a scratch database; a stream is
    /// checked line by line as it is fed), `swapping`. See [`load`].
    async fn load(
        &self,
        uri: &ConnectionUri,
        database: Option<&str>,
        data: LoadData<'_>,
        phase: PhaseSink<'_>,
        progress: ProgressSink<'_>,
    ) -> Result<Loaded, Error> {
        let endpoint = Endpoint::parse(uri)?;
        let database = endpoint.database_to_use(database)?;
        let server = Server::new(endpoint, &self.tools).await?;
        load::load(&server, &database, data, phase, progress).await
    }

    /// SQL text read line by line to its end, with the checks a load makes: no
    /// statement reaching another database, a dump tool's file ending whole.
    async fn check_file(&self, path: &std::path::Path) -> Result<CheckedFile, Error> {
        load::check_file(path).await
    }
}

/// Whether `name` is a scratch database of Cellar's (`..._cellar_` and 8 hex digits).
fn is_scratch(name: &str) -> bool {
    let Some(at) = name.len().checked_sub(16) else { return false };
    let Some((marker, tag)) = name.get(at..).map(|end| end.split_at(8)) else { return false };
    marker == "_cellar_" && tag.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}
