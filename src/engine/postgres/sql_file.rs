//! Running an SQL text file with psql as data, never as a script of this host: psql's
//! meta-commands would let the file run shell commands here (`\!`), read and write
//! local files (`\i`, `\o`, `\copy`, `\w`) or connect elsewhere (`\connect`). psql runs
//! it in restricted mode (`\restrict KEY`, psql 17.6, 16.10, 15.14, 14.19, 13.22 and
//! newer), where every meta-command but `\unrestrict KEY` fails, with a random key the
//! file cannot know.
//!
//! pg_dump of those versions writes `\restrict ITS_KEY` at the top of a plain dump and
//! `\unrestrict ITS_KEY` at the end; a copy of the file without those two lines (blank
//! lines instead, so that psql's line numbers still match the file) is what runs.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};

use crate::engine::Error;
use crate::engine::tool::{Tool, leading_number};

/// The first minor release of each major version whose psql has `\restrict`; every
/// major version after the last one listed has it.
const RESTRICT_SINCE: &[(u32, u32)] = &[(13, 22), (14, 19), (15, 14), (16, 10), (17, 6)];

/// Checks that `psql` has restricted mode.
pub(super) fn check_psql(psql: &Tool) -> Result<(), Error> {
    if has_restrict(&psql.version) {
        return Ok(());
    }
    Err(Error::ToolTooOld(format!(
        "psql {} ({}) cannot run an SQL file safely: it lacks restricted mode (\\restrict), which keeps the \
         file from running commands on this host; psql 17.6, 16.10, 15.14, 14.19, 13.22 or newer is needed \
         (or import a pg_dump custom-format archive)",
        psql.version,
        psql.path.display()
    )))
}

fn has_restrict(version: &str) -> bool {
    let mut numbers = version.split('.').map(leading_number);
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    match RESTRICT_SINCE.iter().find(|(listed, _)| *listed == major) {
        Some((_, since)) => minor >= *since,
        None => major > RESTRICT_SINCE.last().map_or(0, |(last, _)| *last),
    }
}

/// A fresh restrict key: letters and digits only, as psql requires.
pub(super) fn restrict_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A copy of an SQL file without a dump's own `\restrict KEY` (at the top, before any
/// statement) and `\unrestrict KEY` lines; removed when dropped.
pub(super) struct Restricted {
    path: PathBuf,
}

impl Restricted {
    /// Writes the copy of `source` beside it.
    pub(super) async fn copy(source: &Path) -> Result<Restricted, Error> {
        let mut name = source.as_os_str().to_owned();
        name.push(".restricted");
        let copy = Restricted { path: PathBuf::from(name) };
        let failed = |error: std::io::Error| Error::Corrupt(format!("cannot prepare the SQL file: {error}"));
        let input = tokio::fs::File::open(source).await.map_err(failed)?;
        let output = tokio::fs::File::create(&copy.path).await.map_err(failed)?;
        let mut reader = BufReader::new(input);
        let mut writer = BufWriter::new(output);
        let mut line = Vec::new();
        let mut in_header = true;
        let mut dump_key: Option<Vec<u8>> = None;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await.map_err(failed)? == 0 {
                break;
            }
            let text = trim_line_end(&line);
            let is_dump_line = if in_header {
                if let Some(key) = text.strip_prefix(b"\\restrict ") {
                    in_header = false;
                    dump_key = Some(key.to_vec());
                    true
                } else {
                    in_header = text.is_empty() || text.starts_with(b"--");
                    false
                }
            } else {
                dump_key.as_deref().is_some_and(|key| text.strip_prefix(b"\\unrestrict ") == Some(key))
            };
            let kept: &[u8] = if is_dump_line { b"\n" } else { &line };
            writer.write_all(kept).await.map_err(failed)?;
        }
        writer.flush().await.map_err(failed)?;
        Ok(copy)
    }

    /// Where the copy is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Restricted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let end =
        line.iter().rposition(|byte| !matches!(byte, b'\n' | b'\r' | b' ' | b'\t')).map_or(0, |at| at + 1);
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_mode_arrived_in_these_minor_releases() {
        for (version, expected) in [
            ("15.14", true),
            ("15.18", true),
            ("15.13", false),
            ("17.6", true),
            ("17.5", false),
            ("18.0", true),
            ("19", true),
            ("13.22", true),
            ("12.22", false),
            ("9.6.24", false),
            ("", false),
        ] {
            assert_eq!(has_restrict(version), expected, "{version}");
        }
        assert!(restrict_key().chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[tokio::test]
    async fn a_dumps_own_restrict_lines_are_blanked_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("cellar-sql-file-{}", restrict_key()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("dump.sql");
        let text = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\nCREATE TABLE t (a text);\n\
                    COPY t (a) FROM stdin;\n\\restrict abc123\n\\.\n\\unrestrict other\n\\unrestrict abc123\n";
        std::fs::write(&source, text).unwrap();
        let copy = Restricted::copy(&source).await.unwrap();
        let copied = std::fs::read_to_string(copy.path()).unwrap();
        let expected = "--\n-- PostgreSQL database dump\n--\n\n\n\nCREATE TABLE t (a text);\n\
                        COPY t (a) FROM stdin;\n\\restrict abc123\n\\.\n\\unrestrict other\n\n";
        assert_eq!(copied, expected);
        let path = copy.path().to_owned();
        drop(copy);
        assert!(!path.exists());

        std::fs::write(&source, "SELECT 1;\n\\restrict abc\n\\unrestrict abc\n\\! true\n").unwrap();
        let copy = Restricted::copy(&source).await.unwrap();
        let copied = std::fs::read_to_string(copy.path()).unwrap();
        assert_eq!(copied, "SELECT 1;\n\\restrict abc\n\\unrestrict abc\n\\! true\n", "not a dump's header");
        drop(copy);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
