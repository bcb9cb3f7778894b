//! Loading into a PostgreSQL database without ever leaving it half-loaded: the data
//! goes into a new scratch database, and only once every file loaded (a stream: read
//! to its end, whole and checked) does the scratch database take the target's name
//! (the old one is renamed away and dropped).
//!
//! Spooled files are checked first (`pg_restore --list` reads an archive's table of
//! contents) and archives restored with parallel jobs. A stream goes straight into
//! one `pg_restore` (or `psql`) reading its standard input, like `zstd -dc |
//! pg_restore`: a damaged archive is told from pg_restore's error output.
//!
//! The swap needs the target to have no sessions for a moment: connections to it are
//! refused, its sessions ended, then both renames run in one transaction. The new
//! database is owned by the loading user, and objects in it too (`--no-owner
//! --no-acl`), so that a backup restores into another server whose roles differ;
//! database-level settings and grants of the old database are not carried over.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::client::{Server, drop_database_sql, identifier, literal};
use super::sql_file;
use crate::engine::lines::CheckedLines;
use crate::engine::sql::{clean_up_later, head, head_of, looks_like_text, scratch_name};
use crate::engine::tool::{self, Judge, Tool};
use crate::engine::{Error, LoadData, Loaded, PhaseSink, ProgressSink};

/// Bytes of the data's start that say what it is.
pub(super) const HEAD_LEN: usize = 4096;

/// The first bytes of a pg_dump custom-format archive.
const CUSTOM_MAGIC: &[u8] = b"PGDMP";

/// What `pg_restore --verbose` writes as it starts on a table's rows.
const TABLE_LOAD_LINE: &str = "processing data for table";

/// How many times the renames are tried while sessions to the target end.
const SWAP_ATTEMPTS: u32 = 10;

/// One data file and how to load it.
#[derive(Debug)]
enum DataFile {
    /// A pg_dump custom-format archive, with its tables' count.
    Custom { path: PathBuf, tables: u64, size: u64 },
    /// SQL text, run by psql in one transaction.
    Sql { path: PathBuf, size: u64 },
}

/// What the data is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// A pg_dump custom-format archive.
    Custom,
    /// SQL text.
    Sql,
}

/// Loads `data` (pg_dump archives or SQL text: files in order, or one stream) into
/// database `target` of `server`, replacing it; creates it if missing.
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

/// Loads one stream as it comes: an archive into one `pg_restore` reading it from its
/// standard input (tables counted as their rows start; their total is known only at
/// the end), SQL text into `psql`.
async fn load_stream(
    server: &Server,
    target: &str,
    body: &mut (dyn AsyncRead + Send + Unpin),
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    let head = head_of(body, HEAD_LEN).await?;
    let format = format_of(&head)?;
    let tool = match format {
        Format::Custom => server.tool("pg_restore").await?,
        Format::Sql => server.tool("psql").await?,
    };
    if format == Format::Sql {
        // Refused before anything is created on the server.
        sql_file::check_psql(&tool)?;
    }

    phase("connecting");
    let server = server.avoiding(target);
    let scratch = Scratch::create(&server, target).await?;

    phase("loading");
    let input = head.as_slice().chain(body);
    let outcome = match format {
        Format::Custom => restore_stream(&server, &tool, &scratch.name, input, progress).await,
        Format::Sql => run_sql(&server, &scratch.name, input, |fed| progress(fed, 0, 0)).await.map(|()| 0),
    };
    let tables = match outcome {
        Ok(tables) => tables,
        Err(error) => {
            scratch.discard().await;
            return Err(unchanged(error, target));
        }
    };

    phase("swapping");
    scratch.swap_into(target).await?;
    let method = if format == Format::Custom { "pg_restore" } else { "psql" };
    Ok(Loaded { items: tables, functions: 0, method, warnings: Vec::new() })
}

/// Checks every file first, then loads them in order.
async fn load_files(
    server: &Server,
    target: &str,
    data: &[PathBuf],
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    phase("verifying");
    let pg_restore = server.tool("pg_restore").await?;
    let mut files = Vec::new();
    for path in data {
        files.push(inspect(server, &pg_restore, path).await?);
    }
    if files.iter().any(|file| matches!(file, DataFile::Sql { .. })) {
        // Refused before anything is created on the server.
        sql_file::check_psql(&server.tool("psql").await?)?;
    }
    let tables_total: u64 =
        files.iter().map(|file| if let DataFile::Custom { tables, .. } = file { *tables } else { 0 }).sum();

    phase("connecting");
    let server = server.avoiding(target);
    let scratch = Scratch::create(&server, target).await?;

    phase("loading");
    let mut loaded_tables = 0;
    let mut bytes_before = 0;
    let mut methods = Vec::new();
    for file in &files {
        let outcome = match file {
            DataFile::Custom { path, tables, size } => {
                methods.push("pg_restore");
                let done = restore_archive(&server, &pg_restore, &scratch.name, path, |in_file| {
                    let bytes = bytes_before + size * in_file.min(*tables) / (*tables).max(1);
                    progress(bytes, loaded_tables + in_file, tables_total);
                })
                .await;
                done.map(|tables| {
                    loaded_tables += tables;
                    bytes_before += size;
                })
            }
            DataFile::Sql { path, size } => {
                methods.push("psql");
                let done = match tokio::fs::File::open(path).await {
                    Ok(input) => {
                        run_sql(&server, &scratch.name, input, |fed| {
                            progress(bytes_before + fed, loaded_tables, tables_total)
                        })
                        .await
                    }
                    Err(error) => Err(Error::Corrupt(format!("cannot open the data file: {error}"))),
                };
                bytes_before += size;
                progress(bytes_before, loaded_tables, tables_total);
                done
            }
        };
        if let Err(error) = outcome {
            scratch.discard().await;
            return Err(unchanged(error, target));
        }
    }

    phase("swapping");
    scratch.swap_into(target).await?;
    methods.dedup();
    Ok(Loaded { items: loaded_tables, functions: 0, method: method_name(&methods), warnings: Vec::new() })
}

fn method_name(methods: &[&str]) -> &'static str {
    match methods {
        ["psql"] => "psql",
        [_] | [] => "pg_restore",
        _ => "pg_restore+psql",
    }
}

/// Says what a data file is: a custom-format archive whose table of contents
/// `pg_restore --list` reads, or SQL text.
async fn inspect(server: &Server, pg_restore: &Tool, path: &Path) -> Result<DataFile, Error> {
    let size = tokio::fs::metadata(path).await.map(|meta| meta.len()).unwrap_or(0);
    let head = head(path, HEAD_LEN).await?;
    if format_of(&head)? == Format::Custom {
        let mut command = tool::command(&pg_restore.path);
        command.arg("--list").arg(path);
        let version = pg_restore.version.clone();
        let judge: tool::Judge =
            Arc::new(move |status, tail: &str| unreadable_archive(&version, status, tail));
        let listing = tool::run(command, None, &server.tail(), &judge).await?;
        let tables =
            String::from_utf8_lossy(&listing).lines().filter(|line| line.contains(" TABLE DATA ")).count();
        return Ok(DataFile::Custom { path: path.to_owned(), tables: tables as u64, size });
    }
    Ok(DataFile::Sql { path: path.to_owned(), size })
}

/// What the data starting with `head` is: a custom-format archive or SQL text.
pub(super) fn format_of(head: &[u8]) -> Result<Format, Error> {
    if head.starts_with(CUSTOM_MAGIC) {
        return Ok(Format::Custom);
    }
    if looks_like_text(head) {
        return Ok(Format::Sql);
    }
    if head.starts_with(b"REDIS") {
        return Err(Error::Corrupt("the data is a Redis RDB file, not a PostgreSQL dump".to_owned()));
    }
    Err(Error::Corrupt(
        "the data is neither a pg_dump custom-format archive nor SQL text (pg_dump's directory and tar \
         formats are not supported: use --format=custom or plain)"
            .to_owned(),
    ))
}

/// Why `pg_restore --list` could not read an archive: a pg_restore older than the
/// pg_dump that wrote it says "unsupported version" (the archive is fine: the tool is
/// too old); anything else is a damaged archive.
pub(super) fn unreadable_archive(
    pg_restore_version: &str,
    status: std::process::ExitStatus,
    tail: &str,
) -> Error {
    let said = if tail.is_empty() { format!("it exited with {status}") } else { tail.to_owned() };
    if tail.contains("unsupported version") {
        return Error::ToolTooOld(format!(
            "pg_restore {pg_restore_version} cannot read this archive, written by a newer pg_dump: {said}; \
             install a pg_restore at least as new as the pg_dump that wrote it"
        ));
    }
    Error::Corrupt(format!("the pg_dump archive cannot be read: {said}"))
}

/// Runs `pg_restore` of `archive` into `database`; `on_table` gets the count of tables
/// whose rows started loading. Returns the tables loaded.
async fn restore_archive(
    server: &Server,
    pg_restore: &Tool,
    database: &str,
    archive: &Path,
    on_table: impl Fn(u64) + Send + Sync,
) -> Result<u64, Error> {
    let jobs = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 4);
    let mut command = server.command(pg_restore, database);
    command
        .args(["--no-owner", "--no-acl", "--exit-on-error", "--verbose", "--no-password"])
        .arg(format!("--jobs={jobs}"))
        .arg(format!("--dbname={}", conninfo_dbname(database)))
        .arg(archive);
    let tables = Arc::new(AtomicU64::new(0));
    let counter = tables.clone();
    let (report, mut reports) = tokio::sync::watch::channel(0u64);
    let judge = server.judge("pg_restore", database);
    let run = tool::run_following(command, server.tail(), &judge, move |line| {
        if line.contains(TABLE_LOAD_LINE) {
            let _ = report.send(counter.fetch_add(1, Ordering::Relaxed) + 1);
        }
    });
    tokio::pin!(run);
    loop {
        tokio::select! {
            outcome = &mut run => {
                outcome?;
                break;
            }
            Ok(()) = reports.changed() => on_table(*reports.borrow_and_update()),
        }
    }
    Ok(tables.load(Ordering::Relaxed))
}

/// Runs `pg_restore` into `database` reading the archive from `input` (one job: a
/// stream cannot be read out of order); `progress` gets the bytes fed and the tables
/// whose rows started. Returns the tables loaded.
async fn restore_stream(
    server: &Server,
    pg_restore: &Tool,
    database: &str,
    input: impl AsyncRead + Unpin,
    progress: ProgressSink<'_>,
) -> Result<u64, Error> {
    let mut command = server.command(pg_restore, database);
    command
        .args(["--no-owner", "--no-acl", "--exit-on-error", "--verbose", "--no-password"])
        .arg(format!("--dbname={}", conninfo_dbname(database)));
    let tables = Arc::new(AtomicU64::new(0));
    let counter = tables.clone();
    let judge = archive_judge(server, pg_restore, database);
    let on_bytes = |fed: u64| {
        let tables = tables.load(Ordering::Relaxed);
        progress(fed, tables, tables);
    };
    tool::run_feeding(command, input, server.tail(), &judge, on_bytes, move |line| {
        if line.contains(TABLE_LOAD_LINE) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await?;
    Ok(tables.load(Ordering::Relaxed))
}

/// How to read a failed `pg_restore` of a stream: an archive too new for it blames the
/// tool (see [`unreadable_archive`]); anything else as for any pg_restore run.
fn archive_judge(server: &Server, pg_restore: &Tool, database: &str) -> Judge {
    let version = pg_restore.version.clone();
    let judge = server.judge("pg_restore", database);
    Arc::new(move |status, tail: &str| {
        if tail.contains("unsupported version") {
            unreadable_archive(&version, status, tail)
        } else {
            judge(status, tail)
        }
    })
}

/// Runs SQL text from `input` in `database` with psql: one transaction, stopping at the
/// first error, in restricted mode so that the text cannot run psql's meta-commands on
/// this host (see [`sql_file`]); `on_bytes` gets the bytes fed so far.
async fn run_sql(
    server: &Server,
    database: &str,
    input: impl AsyncRead + Unpin,
    on_bytes: impl FnMut(u64),
) -> Result<(), Error> {
    let psql = server.tool("psql").await?;
    sql_file::check_psql(&psql)?;
    let mut command = server.command(&psql, database);
    command
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
        .arg("-c")
        .arg(format!("\\restrict {}", sql_file::restrict_key()))
        .args(["-f", "-"]);
    let input = CheckedLines::new(input, sql_file::DumpRestrictLines::default());
    tool::run_feeding(command, input, server.tail(), &server.judge("psql", database), on_bytes, |_| {}).await
}

/// `dbname='...'`: a database name as a libpq connection string, so that a name with
/// `=` or a URI prefix is not read as connection settings.
fn conninfo_dbname(name: &str) -> String {
    format!("dbname='{}'", name.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Says in a load error that the target was left as it was.
fn unchanged(error: Error, target: &str) -> Error {
    match error {
        Error::RestoreFailed(message) => {
            Error::RestoreFailed(format!("{message} (database {target} was left as it was)"))
        }
        Error::Corrupt(message) => {
            Error::Corrupt(format!("{message} (database {target} was left as it was)"))
        }
        other => other,
    }
}

/// A scratch database being loaded; dropped in the background if the load is
/// abandoned (cancelled) before [`Scratch::swap_into`] or [`Scratch::discard`].
struct Scratch {
    server: Server,
    name: String,
    version_num: u32,
    armed: bool,
}

impl Scratch {
    /// Creates an empty scratch database for `target` with the target's encoding and
    /// locale when it exists. One query asks for those and the server's version.
    async fn create(server: &Server, target: &str) -> Result<Scratch, Error> {
        let name = scratch_name(target);
        let facts = server
            .maintenance(&format!(
                "SELECT current_setting('server_version_num'), pg_encoding_to_char(d.encoding), d.datcollate, \
                 d.datctype FROM (SELECT 1) AS one LEFT JOIN pg_database d ON d.datname = {}",
                literal(target)
            ))
            .await?;
        let row = facts.into_iter().next().unwrap_or_default();
        let version_num = tool::leading_number(row.first().map_or("", String::as_str));
        let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", identifier(&name));
        if let [_, encoding, collate, ctype] = row.as_slice()
            && !encoding.is_empty()
        {
            sql.push_str(&format!(
                " ENCODING {} LC_COLLATE {} LC_CTYPE {}",
                literal(encoding),
                literal(collate),
                literal(ctype)
            ));
        }
        server.maintenance(&sql).await?;
        Ok(Scratch { server: server.clone(), name, version_num, armed: true })
    }

    /// Drops the scratch database now.
    async fn discard(mut self) {
        self.armed = false;
        if let Err(error) = self.server.drop_database(&self.name, self.version_num).await {
            tracing::warn!(database = %self.name, %error, "cannot drop a scratch database");
        }
    }

    /// Gives the scratch database the name `target`, replacing (and dropping) any
    /// database of that name.
    async fn swap_into(mut self, target: &str) -> Result<(), Error> {
        let server = self.server.clone();
        if !server.database_exists(target).await? {
            server
                .maintenance(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    identifier(&self.name),
                    identifier(target)
                ))
                .await?;
            self.armed = false;
            return Ok(());
        }
        let old = scratch_name(target);
        // From here until the renames commit the target refuses connections; abandoned
        // (cancelled) before that, it must take them again.
        let reopen = Deferred::new(
            &server,
            format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", identifier(target)),
        );
        server
            .maintenance(&format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", identifier(target)))
            .await?;
        let wait = if self.version_num >= 140_000 { ", 5000" } else { "" };
        let terminate = format!(
            "SELECT count(pg_terminate_backend(pid{wait})) FROM pg_stat_activity WHERE datname = {} AND pid <> \
             pg_backend_pid()",
            literal(target)
        );
        let renames = format!(
            "BEGIN;\nALTER DATABASE {target_id} RENAME TO {old_id};\nALTER DATABASE {scratch_id} RENAME TO \
             {target_id};\nCOMMIT;",
            target_id = identifier(target),
            old_id = identifier(&old),
            scratch_id = identifier(&self.name),
        );
        let mut attempt = 0;
        let swapped = loop {
            attempt += 1;
            let outcome = match server.maintenance(&terminate).await {
                Ok(_) => server.maintenance(&renames).await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(_) => break Ok(()),
                Err(error) if attempt >= SWAP_ATTEMPTS => break Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        if let Err(error) = swapped {
            reopen.run_now().await;
            self.discard().await;
            return Err(Error::RestoreFailed(format!(
                "the loaded copy could not replace database {target} (its sessions would not end): {error}; \
                 {target} was left as it was"
            )));
        }
        // The target's name is the loaded copy's now, which takes connections; the
        // replaced database goes, even if abandoned here.
        reopen.disarm();
        self.armed = false;
        Deferred::new(&server, drop_database_sql(&old, self.version_num)).run_now().await;
        Ok(())
    }
}

/// A maintenance statement that must run even if the load is abandoned (its future
/// dropped at a cancel) before [`Deferred::run_now`] or [`Deferred::disarm`]: then
/// it runs in the background.
struct Deferred {
    server: Server,
    sql: String,
    armed: bool,
}

impl Deferred {
    fn new(server: &Server, sql: String) -> Deferred {
        Deferred { server: server.clone(), sql, armed: true }
    }

    /// Runs the statement now; a failure is logged (the load's outcome stands).
    async fn run_now(mut self) {
        self.armed = false;
        if let Err(error) = self.server.maintenance(&self.sql).await {
            tracing::warn!(statement = %self.sql, %error, "a clean-up statement failed");
        }
    }

    /// Forgets the statement: it is not needed.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if self.armed {
            let server = self.server.clone();
            let sql = std::mem::take(&mut self.sql);
            let what = format!("the statement {sql}");
            clean_up_later(what, async move { server.maintenance(&sql).await.map(drop) });
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.armed {
            let server = self.server.clone();
            let name = std::mem::take(&mut self.name);
            let version_num = self.version_num;
            let what = format!("dropping the scratch database {name}");
            clean_up_later(what, async move { server.drop_database(&name, version_num).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_passed_as_connection_strings() {
        assert_eq!(conninfo_dbname("orders"), "dbname='orders'");
        assert_eq!(conninfo_dbname("a=b 'c'\\"), "dbname='a=b \\'c\\'\\\\'");
        assert_eq!(method_name(&["pg_restore"]), "pg_restore");
        assert_eq!(method_name(&["psql"]), "psql");
        assert_eq!(method_name(&["pg_restore", "psql"]), "pg_restore+psql");
    }

    #[test]
    fn an_archive_too_new_for_pg_restore_blames_the_tool() {
        use std::os::unix::process::ExitStatusExt;
        let failed = std::process::ExitStatus::from_raw(256);
        let old = unreadable_archive(
            "9.6.24",
            failed,
            "pg_restore: [archiver] unsupported version (1.14) in file header",
        );
        assert!(
            matches!(&old, Error::ToolTooOld(message) if message.contains("pg_restore 9.6.24")),
            "{old:?}"
        );
        let damaged =
            unreadable_archive("15.18", failed, "pg_restore: error: could not read from input file");
        assert!(matches!(damaged, Error::Corrupt(_)), "{damaged:?}");
    }
}
