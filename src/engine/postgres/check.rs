//! Checking a PostgreSQL data file whole without a server: a custom-format archive is
//! read to its end by `pg_restore` (its table of contents with `--list`, then every
//! data block, written as a script to nowhere), so that a damaged or cut archive is
//! refused; SQL text must look like text, and a pg_dump script must end with the line
//! pg_dump writes last.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::client::newest;
use super::load::{Format, HEAD_LEN, format_of, unreadable_archive};
use crate::engine::sql::head;
use crate::engine::tool::{self, Judge, Tail, ToolPath};
use crate::engine::{CheckedFile, Error};

/// How a pg_dump script starts, and the line it ends with when whole.
const SCRIPT_HEADER: &str = "-- PostgreSQL database dump";
const SCRIPT_TRAILER: &str = "-- PostgreSQL database dump complete";

/// Bytes of a script's end searched for its trailer (after it come at most a blank
/// line and psql's `\unrestrict KEY`).
const TAIL_LEN: u64 = 1024;

/// Checks the data file at `path` (see the module's header), with the newest
/// `pg_restore` found on `tools`.
pub(super) async fn check_file(tools: &ToolPath, path: &Path) -> Result<CheckedFile, Error> {
    let head = head(path, HEAD_LEN).await?;
    match format_of(&head)? {
        Format::Custom => check_archive(tools, path).await,
        Format::Sql => {
            check_script_end(path, &head).await?;
            Ok(CheckedFile {
                format: "pg_sql",
                format_version: String::new(),
                server_version: String::new(),
                items: 0,
            })
        }
    }
}

async fn check_archive(tools: &ToolPath, path: &Path) -> Result<CheckedFile, Error> {
    let pg_restore = newest(tools, "pg_restore").await?;
    let version = pg_restore.version.clone();
    let judge: Judge = Arc::new(move |status, tail: &str| unreadable_archive(&version, status, tail));
    let mut list = tool::command(&pg_restore.path);
    list.arg("--list").arg(path);
    let listing = tool::run(list, None, &Tail::new(Vec::new()), &judge).await?;
    let listing = String::from_utf8_lossy(&listing);
    let mut read_all = tool::command(&pg_restore.path);
    read_all.arg("--file=/dev/null").arg(path);
    tool::run(read_all, None, &Tail::new(Vec::new()), &judge).await?;
    Ok(CheckedFile {
        format: "pg_custom",
        format_version: listed(&listing, "Dump Version:"),
        server_version: listed(&listing, "Dumped from database version:"),
        items: listing.lines().filter(|line| line.contains(" TABLE DATA ")).count() as u64,
    })
}

/// The value of a `;     Name: value` line of a `pg_restore --list` header.
fn listed(listing: &str, name: &str) -> String {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix(';'))
        .find_map(|line| line.trim_start().strip_prefix(name))
        .map(|value| value.trim().to_owned())
        .unwrap_or_default()
}

/// A pg_dump script (its header says so) must end with pg_dump's last line: one that
/// does not was cut short.
async fn check_script_end(path: &Path, head: &[u8]) -> Result<(), Error> {
    if !String::from_utf8_lossy(head).lines().take(4).any(|line| line.starts_with(SCRIPT_HEADER)) {
        return Ok(());
    }
    let unreadable = |error: std::io::Error| Error::Corrupt(format!("cannot read the data file: {error}"));
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let size = file.metadata().await.map_err(unreadable)?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(TAIL_LEN))).await.map_err(unreadable)?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).await.map_err(unreadable)?;
    if String::from_utf8_lossy(&tail).lines().any(|line| line.starts_with(SCRIPT_TRAILER)) {
        return Ok(());
    }
    Err(Error::Corrupt(format!(
        "the pg_dump script is truncated: it does not end with pg_dump's \"{SCRIPT_TRAILER}\" line"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_header_gives_the_versions() {
        let listing = ";\n; Archive created at 2026-12-06 05:00:00 UTC\n;     dbname: shop\n;     \
                       Dump Version: 1.16-0\n;     Format: CUSTOM\n;     Dumped from database version: 16.11 \
                       (Debian 16.11-1)\n;\n215; 1259 16390 TABLE public t app\n";
        assert_eq!(listed(listing, "Dump Version:"), "1.16-0");
        assert_eq!(listed(listing, "Dumped from database version:"), "16.11 (Debian 16.11-1)");
        assert_eq!(listed(listing, "Nothing:"), "");
    }

    #[tokio::test]
    async fn a_script_cut_before_its_last_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let whole = "--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE t (a int);\n\n--\n\
                     -- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";
        let path = dir.path().join("whole.sql");
        std::fs::write(&path, whole).unwrap();
        check_script_end(&path, whole.as_bytes()).await.unwrap();
        let cut = &whole[..60];
        std::fs::write(&path, cut).unwrap();
        let error = check_script_end(&path, cut.as_bytes()).await.unwrap_err();
        assert!(matches!(error, Error::Corrupt(ref message) if message.contains("truncated")), "{error}");
        let plain = "CREATE TABLE t (a int);\n";
        std::fs::write(&path, plain).unwrap();
        check_script_end(&path, plain.as_bytes()).await.unwrap();
    }
}
