//! Loading into a MySQL or MariaDB database without ever leaving it half-loaded.
//!
//! 1. Every file is checked first: SQL text (not a Redis or pg_dump file); a
//!    `mariadb-dump`/`mysqldump` file must end with its `-- Dump completed` trailer
//!    (else it was cut short); no file may switch or create databases (`USE`,
//!    `CREATE DATABASE`: a dump made with `--databases` or `--all-databases`), as its
//!    statements would then land outside the scratch database.
//! 2. The files are fed, in order, to the client's standard input (`--binary-mode`,
//!    stopping at the first error) in a new scratch database made with the target's
//!    character set and collation. The client runs sandboxed (`--sandbox`, or MySQL's
//!    `--system-command=OFF`, and `--local-infile=0`): a file is data, and may not run
//!    programs or read and write files on this host.
//! 3. Once all loaded, the scratch database's tables and objects take the target's
//!    place ([`super::swap`]). Cancelling before the swap drops the scratch database in
//!    the background; the swap itself, once started, runs to its end in a task of its
//!    own so that it never stops half-way.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, BufReader};

use super::client::{Server, Stage, identifier, literal};
use super::swap;
use crate::engine::sql::{clean_up_later, head, looks_like_text, scratch_name};
use crate::engine::tool;
use crate::engine::{Error, Loaded, PhaseSink, ProgressSink};

/// How the dump tools' files start (after an optional sandbox-mode line).
const DUMP_HEADERS: &[&str] = &["-- MySQL dump", "-- MariaDB dump"];

/// How the dump tools' files end when they are whole.
const DUMP_TRAILER: &str = "-- Dump completed";

/// What a dump says before each table's rows.
const TABLE_DATA_LINE: &str = "-- Dumping data for table";

/// Statements (and client commands) that would reach outside the scratch database,
/// lowercase, as a line starts.
const FOREIGN_STATEMENTS: &[&str] = &[
    "use ",
    "use`",
    "create database",
    "create schema",
    "drop database",
    "drop schema",
    "\\u",
    "connect ",
    "\\r",
];

/// One checked data file.
#[derive(Debug)]
struct DataFile {
    path: PathBuf,
    size: u64,
    /// Where each table's rows start (byte offsets), for progress.
    table_offsets: Vec<u64>,
}

/// Loads `data` (SQL text, in order) into database `target` of `server`, replacing
/// it; creates it if missing.
pub(super) async fn load(
    server: &Server,
    target: &str,
    data: &[PathBuf],
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    phase("verifying");
    let mut files = Vec::new();
    for path in data {
        files.push(inspect(path).await?);
    }
    let tables_total: u64 = files.iter().map(|file| file.table_offsets.len() as u64).sum();

    phase("connecting");
    let scratch = Scratch::create(server, target).await?;

    phase("loading");
    let (mut bytes_before, mut tables_before) = (0, 0);
    for file in &files {
        let loaded = load_file(server, &scratch.name, file, |fed| {
            let tables = file.table_offsets.iter().take_while(|offset| **offset < fed).count() as u64;
            progress(bytes_before + fed, tables_before + tables, tables_total);
        })
        .await;
        if let Err(error) = loaded {
            scratch.discard().await;
            return Err(unchanged(error, target));
        }
        bytes_before += file.size;
        tables_before += file.table_offsets.len() as u64;
    }

    phase("swapping");
    let tables = scratch.swap_into(target).await.map_err(|error| unchanged(error, target))?;
    progress(bytes_before, tables, tables_total.max(tables));
    Ok(Loaded { items: tables, functions: 0, method: "mysql", warnings: Vec::new() })
}

/// Checks a data file (see the module's header) and finds where its tables' rows
/// start.
async fn inspect(path: &Path) -> Result<DataFile, Error> {
    let head = head(path, 4096).await?;
    if head.starts_with(b"REDIS") {
        return Err(Error::Corrupt("the data is a Redis RDB file, not a MySQL dump".to_owned()));
    }
    if head.starts_with(b"PGDMP") {
        return Err(Error::Corrupt("the data is a pg_dump archive, not a MySQL dump".to_owned()));
    }
    if !looks_like_text(&head) {
        return Err(Error::Corrupt("the data is not SQL text (a mariadb-dump or mysqldump file)".to_owned()));
    }
    let is_dump = String::from_utf8_lossy(&head)
        .lines()
        .take(3)
        .any(|line| DUMP_HEADERS.iter().any(|header| line.starts_with(header)));

    let file = tokio::fs::File::open(path)
        .await
        .map_err(|error| Error::Corrupt(format!("cannot open the data file: {error}")))?;
    let mut reader = BufReader::new(file);
    let (mut offset, mut line_number) = (0u64, 0u64);
    let mut table_offsets = Vec::new();
    let mut last_line = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|error| Error::Corrupt(format!("cannot read the data file: {error}")))?;
        if read == 0 {
            break;
        }
        line_number += 1;
        if line.starts_with(TABLE_DATA_LINE.as_bytes()) {
            table_offsets.push(offset);
        }
        if let Some(statement) = foreign_statement(&line) {
            return Err(Error::Corrupt(format!(
                "line {line_number} of the data switches or creates databases ({statement}...): a dump made with \
                 --databases or --all-databases cannot be loaded into one database; dump the database alone \
                 (mariadb-dump DATABASE)"
            )));
        }
        if !line.trim_ascii().is_empty() {
            last_line.clone_from(&line);
        }
        offset += read as u64;
    }
    if is_dump && !last_line.starts_with(DUMP_TRAILER.as_bytes()) {
        return Err(Error::Corrupt(format!(
            "the dump is truncated: it does not end with the dump tool's \"{DUMP_TRAILER}\" line"
        )));
    }
    Ok(DataFile { path: path.to_owned(), size: offset, table_offsets })
}

/// The start of `line` when it is a statement reaching outside the current database.
fn foreign_statement(line: &[u8]) -> Option<String> {
    let start = line.trim_ascii_start();
    let prefix = String::from_utf8_lossy(&start[..start.len().min(24)]).to_ascii_lowercase();
    if prefix.starts_with("use index") || prefix.starts_with("use key") {
        return None;
    }
    let found = FOREIGN_STATEMENTS.iter().any(|statement| prefix.starts_with(statement));
    found.then(|| prefix.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

/// Feeds one file to the client in `database`; `on_bytes` gets the bytes fed so far.
async fn load_file(
    server: &Server,
    database: &str,
    file: &DataFile,
    on_bytes: impl FnMut(u64),
) -> Result<(), Error> {
    let input = tokio::fs::File::open(&file.path)
        .await
        .map_err(|error| Error::Corrupt(format!("cannot open the data file: {error}")))?;
    let sandbox = server.sandbox_flags().await?;
    let mut command = server.client_command();
    command
        .args(["--batch", "--binary-mode", "--max-allowed-packet=1G"])
        .args(sandbox)
        .arg(format!("--database={database}"));
    let judge = server.judge(&server.client_name(), database, Stage::Load);
    tool::run_feeding(command, input, server.tail(), &judge, on_bytes).await
}

/// Says in a load error that the target was left as it was.
fn unchanged(error: Error, target: &str) -> Error {
    match error {
        Error::RestoreFailed(message) if !message.contains("left as it was") => {
            Error::RestoreFailed(format!("{message} (database {target} was left as it was)"))
        }
        other => other,
    }
}

/// A scratch database being loaded; dropped in the background if the load is
/// abandoned (cancelled) before [`Scratch::swap_into`] or [`Scratch::discard`].
struct Scratch {
    server: Server,
    name: String,
    armed: bool,
}

impl Scratch {
    /// Creates an empty scratch database for `target`, with the target's character
    /// set and collation when it exists (else utf8mb4).
    async fn create(server: &Server, target: &str) -> Result<Scratch, Error> {
        let name = scratch_name(target);
        let like_sql = format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE \
             SCHEMA_NAME = {}",
            literal(target)
        );
        let like = server.query(None, &like_sql).await?;
        let (charset, collation) = match like.first().map(Vec::as_slice) {
            Some([charset, collation]) => (charset.clone(), Some(collation.clone())),
            _ => ("utf8mb4".to_owned(), None),
        };
        let mut sql = format!("CREATE DATABASE {} CHARACTER SET {}", identifier(&name), literal(&charset));
        if let Some(collation) = collation {
            sql.push_str(&format!(" COLLATE {}", literal(&collation)));
        }
        server.query(None, &sql).await?;
        Ok(Scratch { server: server.clone(), name, armed: true })
    }

    /// Drops the scratch database now.
    async fn discard(mut self) {
        self.armed = false;
        if let Err(error) = self.server.drop_database(&self.name).await {
            tracing::warn!(database = %self.name, %error, "cannot drop a scratch database");
        }
    }

    /// Moves the scratch database's content into `target` (see [`swap::swap`]) in a
    /// task of its own, which runs to its end even if this future is dropped, and
    /// drops the scratch database. Returns the tables moved.
    async fn swap_into(mut self, target: &str) -> Result<u64, Error> {
        self.armed = false;
        let task = tokio::spawn(swap::swap(self.server.clone(), self.name.clone(), target.to_owned()));
        task.await.map_err(|error| {
            Error::RestoreFailed(format!("the swap into database {target} failed: {error}"))
        })?
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.armed {
            let server = self.server.clone();
            let name = std::mem::take(&mut self.name);
            let what = format!("dropping the scratch database {name}");
            clean_up_later(what, async move { server.drop_database(&name).await });
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn statements_reaching_other_databases_are_found() {
        let cases = [
            ("USE `shop`;\n", true),
            ("  use shop\n", true),
            ("CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`;\n", true),
            ("create schema x;\n", true),
            ("DROP DATABASE IF EXISTS `shop`;\n", true),
            ("\\u shop\n", true),
            ("USE INDEX (by_day)\n", false),
            ("INSERT INTO `users` VALUES (1);\n", false),
            ("-- USE nothing\n", false),
            ("CREATE TABLE `database` (id int);\n", false),
        ];
        for (line, foreign) in cases {
            assert_eq!(foreign_statement(line.as_bytes()).is_some(), foreign, "{line}");
        }
    }

    #[tokio::test]
    async fn files_are_checked_before_loading() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let whole = write(
            "whole.sql",
            b"/*M!999999\\- enable the sandbox mode */\n-- MariaDB dump 10.19\n--\n-- Dumping data for table `a`\n\
              INSERT INTO a VALUES (1);\n-- Dumping data for table `b`\n-- Dump completed on 2026-01-01\n\n",
        );
        let file = inspect(&whole).await.unwrap();
        assert_eq!(file.table_offsets.len(), 2);
        let cut = write("cut.sql", b"-- MySQL dump 10.13\n--\nINSERT INTO a VALUES (1);\n");
        assert!(matches!(inspect(&cut).await, Err(Error::Corrupt(message)) if message.contains("truncated")));
        let plain = write("plain.sql", b"CREATE TABLE a (id int);\n");
        assert!(inspect(&plain).await.is_ok());
        let all = write("all.sql", b"-- MariaDB dump\nCREATE DATABASE x;\nUSE x;\n-- Dump completed\n");
        assert!(
            matches!(inspect(&all).await, Err(Error::Corrupt(message)) if message.contains("--databases"))
        );
        let rdb = write("dump.rdb", b"REDIS0011\xfa\x09redis-ver");
        assert!(matches!(inspect(&rdb).await, Err(Error::Corrupt(message)) if message.contains("Redis")));
        let archive = write("dump.pgc", b"PGDMP\x01\x0e\x00");
        assert!(
            matches!(inspect(&archive).await, Err(Error::Corrupt(message)) if message.contains("pg_dump"))
        );
    }
}
