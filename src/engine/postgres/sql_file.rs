//! Running an SQL text file with psql as data, never as a script of this host: psql's
//! meta-commands would let the file run shell commands here (`\!`), read and write
//! local files (`\i`, `\o`, `\copy`, `\w`) or connect elsewhere (`\connect`). psql runs
//! it in restricted mode (`\restrict KEY`, psql 17.6, 16.10, 15.14, 14.19, 13.22 and
//! newer), where every meta-command but `\unrestrict KEY` fails, with a random key the
//! file cannot know.
//!
//! pg_dump of those versions writes `\restrict ITS_KEY` at the top of a plain dump and
//! `\unrestrict ITS_KEY` at the end; the text goes to psql without those two lines
//! (blank lines instead, so that psql's line numbers still match the file:
//! [`DumpRestrictLines`]).

use crate::engine::Error;
use crate::engine::lines::{LineRule, LineStart, Verdict};
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

/// Blanks a dump's own `\restrict KEY` line (at the top, before any statement) and its
/// `\unrestrict KEY` lines; every other line passes as it is.
#[derive(Debug)]
pub(super) struct DumpRestrictLines {
    in_header: bool,
    dump_key: Option<Vec<u8>>,
}

impl Default for DumpRestrictLines {
    fn default() -> Self {
        DumpRestrictLines { in_header: true, dump_key: None }
    }
}

impl LineRule for DumpRestrictLines {
    fn judge(&mut self, line: &LineStart<'_>) -> Verdict {
        // Both lines stand alone, at the margin; a longer line is neither.
        let text = trim_line_end(line.text);
        let alone = line.whole && !line.indented;
        if self.in_header {
            if let Some(key) = text.strip_prefix(b"\\restrict ").filter(|_| alone) {
                self.in_header = false;
                self.dump_key = Some(key.to_vec());
                return Verdict::Blank;
            }
            self.in_header = line.is_blank() || (!line.indented && text.starts_with(b"--"));
            return Verdict::Pass;
        }
        let unrestricts = |key: &[u8]| alone && text.strip_prefix(b"\\unrestrict ") == Some(key);
        if self.dump_key.as_deref().is_some_and(unrestricts) { Verdict::Blank } else { Verdict::Pass }
    }

    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
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

    /// `text` as psql gets it.
    fn filtered(text: &str) -> String {
        let mut scanner = crate::engine::lines::LineScanner::new(DumpRestrictLines::default());
        let mut out = Vec::new();
        scanner.scan(text.as_bytes(), &mut out).unwrap();
        scanner.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_dumps_own_restrict_lines_are_blanked_and_nothing_else() {
        let text = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\nCREATE TABLE t (a text);\n\
                    COPY t (a) FROM stdin;\n\\restrict abc123\n\\.\n\\unrestrict other\n\\unrestrict abc123\n";
        let expected = "--\n-- PostgreSQL database dump\n--\n\n\n\nCREATE TABLE t (a text);\n\
                        COPY t (a) FROM stdin;\n\\restrict abc123\n\\.\n\\unrestrict other\n\n";
        assert_eq!(filtered(text), expected);
        let text = "SELECT 1;\n\\restrict abc\n\\unrestrict abc\n\\! true\n";
        assert_eq!(filtered(text), text, "not a dump's header");
        let text = "  \\restrict abc\n\\unrestrict abc\n";
        assert_eq!(filtered(text), text, "an indented line is not the dump's");
    }
}
