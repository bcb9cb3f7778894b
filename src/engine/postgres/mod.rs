//! The PostgreSQL engine: logical backups of one database with `pg_dump` (custom
//! format, uncompressed: Cellar compresses), loads with `pg_restore` (or `psql` for
//! SQL text) into a scratch database that is swapped in only once it loaded whole.

mod check;
mod client;
mod load;
mod sql_file;

use std::collections::BTreeMap;

use async_trait::async_trait;

use self::client::{Server, check_dump_tool, major_of, newest};
use super::sql::Endpoint;
use super::tool::{Tool, ToolPath, spawn_counting};
use super::{CheckedFile, Engine, Error, LoadData, Loaded, PhaseSink, ProgressSink, Snapshot};
use crate::domain::{ConnectionUri, EngineKind};

/// The tools the engine runs.
const TOOLS: [&str; 3] = ["psql", "pg_dump", "pg_restore"];

/// What `pg_dump --verbose` writes as it starts on a table's rows.
const TABLE_DUMP_LINE: &str = "dumping contents of table";

/// The PostgreSQL engine.
#[derive(Debug, Clone, Default)]
pub struct PostgresEngine {
    tools: ToolPath,
}

impl PostgresEngine {
    /// The engine, finding its tools on `tools`.
    pub fn new(tools: ToolPath) -> Self {
        PostgresEngine { tools }
    }
}

#[async_trait]
impl Engine for PostgresEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Postgres
    }

    /// The newest `psql`, `pg_dump` and `pg_restore`.
    async fn prepare(&self) -> Vec<Tool> {
        let found = futures::future::join_all(TOOLS.map(|name| newest(&self.tools, name))).await;
        found.into_iter().filter_map(Result::ok).collect()
    }

    /// Every database that accepts connections, less templates, the `postgres`
    /// maintenance database and scratch databases Cellar left behind.
    async fn databases(&self, uri: &ConnectionUri) -> Result<Vec<String>, Error> {
        let server = Server::new(Endpoint::parse(uri)?, &self.tools).await?;
        let sql = "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn \
                   AND datname <> 'postgres' AND datname !~ '_cellar_[0-9a-f]{8}$' ORDER BY datname";
        let rows = match server.endpoint.database.clone() {
            Some(database) => server.query(&database, sql).await?,
            None => server.maintenance(sql).await?,
        };
        Ok(rows.into_iter().filter_map(|row| row.into_iter().next()).collect())
    }

    /// Phases: `connecting` (server facts, tool choice), `dumping`. The body is
    /// `pg_dump --format=custom --compress=0`'s output; it ends only once pg_dump exited
    /// cleanly. Bytes are estimated from `pg_database_size`, items are tables.
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
        let facts_sql = "SELECT current_setting('server_version_num'), current_setting('server_version'), \
                         pg_database_size(current_database()), (SELECT count(*) FROM pg_class c JOIN \
                         pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN \
                         ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast')";
        let facts = server.query(&database, facts_sql).await?.into_iter().next().unwrap_or_default();
        let field = |index: usize| facts.get(index).cloned().unwrap_or_default();
        let version_num = super::tool::leading_number(&field(0));
        let server_version = field(1).split_whitespace().next().unwrap_or_default().to_owned();
        let pg_dump = server.tool("pg_dump").await?;
        check_dump_tool(&pg_dump, major_of(version_num))?;

        let mut command = server.dump_command(&pg_dump, &database);
        command.args(["--format=custom", "--compress=0", "--verbose", "--no-password"]);
        let judge = server.judge("pg_dump", &database);
        let (body, tables_done) =
            spawn_counting(command, server.tail(), judge, |line: &str| line.contains(TABLE_DUMP_LINE))?;
        phase("dumping");
        let details = BTreeMap::from([
            ("database".to_owned(), database.clone()),
            ("tool".to_owned(), format!("pg_dump {}", pg_dump.version)),
        ]);
        Ok(Snapshot {
            server_version,
            format: "pg_custom",
            format_version: pg_dump.version.clone(),
            bytes_total: field(2).parse().ok(),
            bytes_total_exact: false,
            items_total: field(3).parse().ok(),
            details,
            items_done: Some(tables_done),
            produced_here: true,
            body: Box::pin(body),
        })
    }

    /// Phases: for files `verifying` (each file is a pg_dump archive whose table of
    /// contents reads, or SQL text), then `connecting`, `loading` (into a scratch
    /// database; a stream straight into pg_restore or psql), `swapping`. See [`load`].
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

    /// An archive read to its end by `pg_restore`; SQL text checked for pg_dump's last
    /// line. See [`check`].
    async fn check_file(&self, path: &std::path::Path) -> Result<CheckedFile, Error> {
        check::check_file(&self.tools, path).await
    }
}
