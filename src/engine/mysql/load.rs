//! Loading into a MySQL or MariaDB database without ever leaving it half-loaded.
//!
//! 1. The data is checked ([`DumpLines`]): SQL text (not a Redis or pg_dump file); a
//!    `mariadb-dump`/`mysqldump` file must end with its `-- Dump completed` trailer
//!    (else it was cut short); no line may switch or create databases (`USE`, `\u`,
//!    `CREATE DATABASE`: a dump made with `--databases` or `--all-databases`), as its
//!    statements would then land outside the scratch database. Spooled files are
//!    checked whole before anything is created; a stream is checked as it flows, each
//!    line's start judged before the client receives any of it, the trailer at the
//!    end, before the swap.
//! 2. The data is fed, in order, to the client's standard input (`--binary-mode`,
//!    stopping at the first error) in a new scratch database made with the target's
//!    character set and collation. The client runs sandboxed (`--sandbox`, or MySQL's
//!    `--system-command=OFF`, and `--local-infile=0`): a file is data, and may not run
//!    programs or read and write files on this host.
//! 3. Once all loaded (a stream read to its end: whole and checked), the scratch
//!    database's tables and objects take the target's place ([`super::swap`]). A
//!    failure or a cancel before the swap kills the client and drops the scratch
//!    database (a cancel: in the background); the swap itself, once started, runs to
//!    its end in a task of its own so that it never stops half-way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::client::{Server, Stage, identifier, literal};
use super::swap;
use crate::engine::lines::{CheckedLines, LineRule, LineStart, Verdict};
use crate::engine::sql::{clean_up_later, head, head_of, looks_like_text, scratch_name};
use crate::engine::tool;
use crate::engine::{CheckedFile, Error, LoadData, Loaded, PhaseSink, ProgressSink};

/// Bytes of the data's start that say what it is.
const HEAD_LEN: usize = 4096;

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

/// Loads `data` (SQL text: files in order, or one stream) into database `target` of
/// `server`, replacing it; creates it if missing.
pub(super) async fn load(
    server: &Server,
    target: &str,
    data: LoadData<'_>,
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    match data {
        LoadData::Files(paths) => load_files(server, target, paths, phase, progress).await,
        LoadData::Stream(stream) => load_stream(server, target, stream.body, phase, progress).await,
    }
}

/// Checks every file whole, then loads them in order.
async fn load_files(
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
        let input = tokio::fs::File::open(&file.path)
            .await
            .map_err(|error| Error::Corrupt(format!("cannot open the data file: {error}")))?;
        let loaded = feed(server, &scratch.name, input, |fed| {
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

/// Feeds one stream to the client as it comes, checked line by line on the way: the
/// tables are counted as their rows start (their total is known only at the end).
async fn load_stream(
    server: &Server,
    target: &str,
    body: &mut (dyn AsyncRead + Send + Unpin),
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    let head = head_of(body, HEAD_LEN).await?;
    check_head(&head)?;

    phase("connecting");
    let scratch = Scratch::create(server, target).await?;

    phase("loading");
    let rule = DumpLines::default();
    let tables_seen = rule.tables_seen.clone();
    let input = CheckedLines::new(head.as_slice().chain(body), rule);
    let mut bytes = 0;
    let loaded = feed(server, &scratch.name, input, |fed| {
        bytes = fed;
        let tables = tables_seen.load(Ordering::Relaxed);
        progress(fed, tables, tables);
    })
    .await;
    if let Err(error) = loaded {
        scratch.discard().await;
        return Err(unchanged(error, target));
    }

    phase("swapping");
    let tables = scratch.swap_into(target).await.map_err(|error| unchanged(error, target))?;
    progress(bytes, tables, tables_seen.load(Ordering::Relaxed).max(tables));
    Ok(Loaded { items: tables, functions: 0, method: "mysql", warnings: Vec::new() })
}

/// Refuses data whose first bytes say it is not SQL text.
fn check_head(head: &[u8]) -> Result<(), Error> {
    if head.starts_with(b"REDIS") {
        return Err(Error::Corrupt("the data is a Redis RDB file, not a MySQL dump".to_owned()));
    }
    if head.starts_with(b"PGDMP") {
        return Err(Error::Corrupt("the data is a pg_dump archive, not a MySQL dump".to_owned()));
    }
    if !looks_like_text(head) {
        return Err(Error::Corrupt("the data is not SQL text (a mariadb-dump or mysqldump file)".to_owned()));
    }
    Ok(())
}

/// Checks a data file whole (see the module's header) and finds where its tables'
/// rows start.
async fn inspect(path: &Path) -> Result<DataFile, Error> {
    check_head(&head(path, HEAD_LEN).await?)?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|error| Error::Corrupt(format!("cannot open the data file: {error}")))?;
    let mut lines = CheckedLines::new(file, DumpLines::default());
    let size = tokio::io::copy(&mut lines, &mut tokio::io::sink()).await.map_err(|error| {
        tool::carried(error)
            .unwrap_or_else(|error| Error::Corrupt(format!("cannot read the data file: {error}")))
    })?;
    Ok(DataFile { path: path.to_owned(), size, table_offsets: lines.rule().table_offsets.clone() })
}

/// Checks a data file whole, as [`load`] checks its files.
pub(super) async fn check_file(path: &Path) -> Result<CheckedFile, Error> {
    let file = inspect(path).await?;
    Ok(CheckedFile {
        format: "mysql_sql",
        format_version: String::new(),
        server_version: String::new(),
        items: file.table_offsets.len() as u64,
    })
}

/// The line-by-line checks of MySQL data (see the module's header), noting where
/// tables' rows start.
#[derive(Debug, Default)]
struct DumpLines {
    /// Whether the first lines say a dump tool wrote it (it must then end whole).
    is_dump: bool,
    /// Where each table's rows start (byte offsets).
    table_offsets: Vec<u64>,
    /// The tables whose rows started so far, for progress while the data flows.
    tables_seen: Arc<AtomicU64>,
    /// The start of the last line that is not blank, if it was not indented.
    last_line: Vec<u8>,
}

impl LineRule for DumpLines {
    fn judge(&mut self, line: &LineStart<'_>) -> Verdict {
        if let Some(statement) = foreign_statement(line.text) {
            return Verdict::Refuse(Error::Corrupt(format!(
                "line {} of the data switches or creates databases ({statement}...): a dump made with \
                 --databases or --all-databases cannot be loaded into one database; dump the database alone \
                 (mariadb-dump DATABASE)",
                line.number
            )));
        }
        let at_margin = |prefix: &str| !line.indented && line.text.starts_with(prefix.as_bytes());
        if line.number <= 3 && DUMP_HEADERS.iter().any(|header| at_margin(header)) {
            self.is_dump = true;
        }
        if at_margin(TABLE_DATA_LINE) {
            self.table_offsets.push(line.offset);
            self.tables_seen.fetch_add(1, Ordering::Relaxed);
        }
        if !line.is_blank() {
            self.last_line.clear();
            if !line.indented {
                self.last_line.extend_from_slice(&line.text[..line.text.len().min(DUMP_TRAILER.len())]);
            }
        }
        Verdict::Pass
    }

    fn finish(&mut self) -> Result<(), Error> {
        if self.is_dump && !self.last_line.starts_with(DUMP_TRAILER.as_bytes()) {
            return Err(Error::Corrupt(format!(
                "the dump is truncated: it does not end with the dump tool's \"{DUMP_TRAILER}\" line"
            )));
        }
        Ok(())
    }
}

/// The start of `line` when it is a statement reaching outside the current database.
fn foreign_statement(line: &[u8]) -> Option<String> {
    let start = line.trim_ascii_start();
    // Every line passes here: compared in place, a string only for a line refused.
    let mut lower = [0u8; 24];
    let prefix = &mut lower[..start.len().min(24)];
    prefix.copy_from_slice(&start[..prefix.len()]);
    prefix.make_ascii_lowercase();
    let prefix = &*prefix;
    if prefix.starts_with(b"use index") || prefix.starts_with(b"use key") {
        return None;
    }
    let found = FOREIGN_STATEMENTS.iter().any(|statement| prefix.starts_with(statement.as_bytes()));
    found.then(|| String::from_utf8_lossy(prefix).split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

/// Feeds `input` to the client in `database`; `on_bytes` gets the bytes fed so far.
async fn feed(
    server: &Server,
    database: &str,
    input: impl AsyncRead + Unpin,
    on_bytes: impl FnMut(u64),
) -> Result<(), Error> {
    let sandbox = server.sandbox_flags().await?;
    let mut command = server.client_command();
    command
        .args(["--batch", "--binary-mode", "--max-allowed-packet=1G"])
        .args(sandbox)
        .arg(format!("--database={database}"));
    let judge = server.judge(&server.client_name(), database, Stage::Load);
    tool::run_feeding(command, input, server.tail(), &judge, on_bytes, |_| {}).await
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
