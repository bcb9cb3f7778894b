//! What a decompressed data file holds, told by its first bytes: a Redis (or Valkey)
//! RDB, a pg_dump custom-format archive, or SQL text, with the engine that wrote the
//! text when its header says so. For bringing archives into the catalog, where the
//! engine is not known in advance.

use crate::domain::EngineKind;

/// Bytes of a file's start that [`content_of`] needs to judge it.
pub const HEAD_LEN: usize = 4096;

/// How many of the text's first lines may carry the dump tool's header (MariaDB 11
/// writes a sandbox comment before it; psql 17.6 a `\restrict` line after it).
const HEADER_LINES: usize = 8;

/// The header lines each engine's dump tools write, in the text's first lines.
const SQL_HEADERS: &[(&str, EngineKind)] = &[
    ("-- PostgreSQL database dump", EngineKind::Postgres),
    ("-- PostgreSQL database cluster dump", EngineKind::Postgres),
    ("\\restrict ", EngineKind::Postgres),
    ("-- MySQL dump", EngineKind::Mysql),
    ("-- MariaDB dump", EngineKind::Mysql),
    ("/*M!999999", EngineKind::Mysql),
];

/// What a data file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A Redis or Valkey RDB file (`REDIS` or `VALKEY` magic).
    Rdb,
    /// A pg_dump custom-format archive (`PGDMP` magic).
    PgArchive,
    /// SQL text; the engine whose dump tool wrote it, when its header says.
    Sql(Option<EngineKind>),
    /// None of these.
    Unknown,
}

impl Content {
    /// The engine that reads this content, when the content alone tells.
    pub fn engine(self) -> Option<EngineKind> {
        match self {
            Content::Rdb => Some(EngineKind::Redis),
            Content::PgArchive => Some(EngineKind::Postgres),
            Content::Sql(engine) => engine,
            Content::Unknown => None,
        }
    }

    /// Whether `engine` can read this content.
    pub fn readable_by(self, engine: EngineKind) -> bool {
        match self {
            Content::Rdb => engine == EngineKind::Redis,
            Content::PgArchive => engine == EngineKind::Postgres,
            Content::Sql(Some(wrote)) => engine == wrote,
            Content::Sql(None) => engine != EngineKind::Redis,
            Content::Unknown => false,
        }
    }

    /// The content in words, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Content::Rdb => "a Redis RDB file",
            Content::PgArchive => "a pg_dump custom-format archive",
            Content::Sql(Some(EngineKind::Postgres)) => "a PostgreSQL SQL dump",
            Content::Sql(Some(_)) => "a MySQL/MariaDB SQL dump",
            Content::Sql(None) => "SQL text",
            Content::Unknown => "neither an RDB file, a pg_dump archive nor SQL text",
        }
    }
}

/// What the data starting with `head` (its first [`HEAD_LEN`] bytes, or all of it) is.
pub fn content_of(head: &[u8]) -> Content {
    if head.starts_with(b"REDIS") || head.starts_with(b"VALKEY") {
        return Content::Rdb;
    }
    if head.starts_with(b"PGDMP") {
        return Content::PgArchive;
    }
    if !super::sql::looks_like_text(head) {
        return Content::Unknown;
    }
    let text = String::from_utf8_lossy(head);
    let wrote = text.lines().take(HEADER_LINES).find_map(|line| {
        SQL_HEADERS.iter().find(|(header, _)| line.starts_with(header)).map(|(_, engine)| *engine)
    });
    Content::Sql(wrote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_and_dump_headers_tell_the_engine() {
        assert_eq!(content_of(b"REDIS0011\xfa\x09redis-ver"), Content::Rdb);
        assert_eq!(content_of(b"VALKEY080\xfa"), Content::Rdb);
        assert_eq!(content_of(b"PGDMP\x01\x10\x00\x04\x08"), Content::PgArchive);
        let postgres =
            "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET statement_timeout = 0;\n";
        assert_eq!(content_of(postgres.as_bytes()), Content::Sql(Some(EngineKind::Postgres)));
        let mariadb = "/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19  Distrib 10.11.6\n";
        assert_eq!(content_of(mariadb.as_bytes()), Content::Sql(Some(EngineKind::Mysql)));
        let mysql = "-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n-- Host: localhost\n";
        assert_eq!(content_of(mysql.as_bytes()), Content::Sql(Some(EngineKind::Mysql)));
        assert_eq!(content_of(b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n"), Content::Sql(None));
        assert_eq!(content_of(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"), Content::Unknown);
    }

    #[test]
    fn plain_sql_is_readable_by_either_sql_engine_only() {
        let sql = Content::Sql(None);
        assert!(sql.readable_by(EngineKind::Postgres) && sql.readable_by(EngineKind::Mysql));
        assert!(!sql.readable_by(EngineKind::Redis));
        assert!(!Content::Sql(Some(EngineKind::Mysql)).readable_by(EngineKind::Postgres));
        assert!(!Content::Rdb.readable_by(EngineKind::Postgres));
        assert_eq!(Content::PgArchive.engine(), Some(EngineKind::Postgres));
        assert_eq!(Content::Unknown.engine(), None);
    }
}
