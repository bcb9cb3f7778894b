//! The load journal: a directory (`<data dir>/journal`) of small files in which a load
//! records what it is about to borrow from a target (settings it changes, with their
//! values before) before it changes anything, and removes the file once it put them
//! back. A start after a crash finds the files left behind and puts those targets back.
//!
//! A record is written to a hidden temp file (mode 0600: it may hold a password), fsynced,
//! renamed to `<kind>-<uuid>.json`, and the directory fsynced: it is whole or absent,
//! never torn. It names the database by its catalog id, never by its connection URI.
//! The journal is the engines' own: neither the catalog nor any backup storage is
//! touched, so a crash mid-write cannot harm either.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::DatabaseId;

/// The prefix of a record being written; such files a crash left are swept.
const TEMP_PREFIX: &str = ".tmp-";
/// Record files end with this.
const SUFFIX: &str = ".json";

/// A journal failure; never holds a record's content.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory or a record could not be written, read or removed.
    #[error("journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A record that is not one this version writes.
    #[error("journal record {path} is unreadable: {problem}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong with it (never the content).
        problem: String,
    },
}

/// The journal directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    dir: PathBuf,
}

/// The journal as one load uses it: the records it writes name `database`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseJournal {
    journal: Journal,
    database: DatabaseId,
}

/// A record on disk: which database, what kind of borrowing (`redis-replication`), and the
/// kind's own record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Envelope {
    database_id: DatabaseId,
    kind: String,
    record: serde_json::Value,
}

/// A record found in the journal.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The database whose target was borrowed from.
    pub database: DatabaseId,
    /// What kind of borrowing (`redis-replication`).
    pub kind: String,
    /// The kind's own record.
    pub(crate) record: serde_json::Value,
    /// The file.
    pub(crate) file: RecordFile,
}

/// A record's file; [`RecordFile::remove`] once what it records is undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFile {
    path: PathBuf,
}

impl Journal {
    /// The journal in `dir` (created when the first record is written).
    pub fn new(dir: impl Into<PathBuf>) -> Journal {
        Journal { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The journal for loads into `database`.
    pub fn for_database(&self, database: DatabaseId) -> DatabaseJournal {
        DatabaseJournal { journal: self.clone(), database }
    }

    /// Every record left in the journal, oldest name first; a missing directory has none.
    /// Temp files of records never finished are removed. A record that cannot be read is
    /// an error in the list, and stays on disk for an operator to look at.
    pub async fn entries(&self) -> Result<Vec<Result<Entry, Error>>, Error> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || entries(&dir)).await.unwrap_or_else(|join_error| {
            Err(Error::Io { path: self.dir.display().to_string(), source: std::io::Error::other(join_error) })
        })
    }
}

impl DatabaseJournal {
    /// The database the records name.
    pub fn database(&self) -> DatabaseId {
        self.database
    }

    /// Writes a record of `kind` durably (fsynced, then renamed into place, then the
    /// directory fsynced); returns its file.
    pub(crate) async fn write(&self, kind: &str, record: serde_json::Value) -> Result<RecordFile, Error> {
        let envelope = Envelope { database_id: self.database, kind: kind.to_owned(), record };
        let bytes = serde_json::to_vec_pretty(&envelope).map_err(|error| Error::Malformed {
            path: self.journal.dir.display().to_string(),
            problem: error.to_string(),
        })?;
        let name = format!("{kind}-{}{SUFFIX}", uuid::Uuid::new_v4().simple());
        let dir = self.journal.dir.clone();
        let written = tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes)).await;
        written.unwrap_or_else(|join_error| {
            Err(Error::Io {
                path: self.journal.dir.display().to_string(),
                source: std::io::Error::other(join_error),
            })
        })
    }
}

impl Entry {
    /// Where the record is.
    pub fn file_path(&self) -> &Path {
        self.file.path()
    }
}

impl RecordFile {
    /// Removes the record (and fsyncs the directory); a record already gone is fine.
    pub async fn remove(&self) -> Result<(), Error> {
        let path = self.path.clone();
        let removed = tokio::task::spawn_blocking(move || remove_durably(&path)).await;
        removed.unwrap_or_else(|join_error| {
            Err(Error::Io {
                path: self.path.display().to_string(),
                source: std::io::Error::other(join_error),
            })
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_error(dir))
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<RecordFile, Error> {
    create_dir(dir)?;
    let temp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::Io { path: temp.display().to_string(), source });
    }
    let path = dir.join(name);
    if let Err(source) = std::fs::rename(&temp, &path) {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::Io { path: path.display().to_string(), source });
    }
    sync_dir(dir)?;
    Ok(RecordFile { path })
}

fn remove_durably(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Io { path: path.display().to_string(), source }),
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir).and_then(|handle| handle.sync_all()).map_err(io_error(dir))
}

fn entries(dir: &Path) -> Result<Vec<Result<Entry, Error>>, Error> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: dir.display().to_string(), source }),
    };
    let mut names = Vec::new();
    for item in listing {
        let name = item.map_err(io_error(dir))?.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            // A record whose write never finished: its load had changed nothing yet.
            let _ = std::fs::remove_file(dir.join(&name));
        } else if name.ends_with(SUFFIX) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|name| read_entry(&dir.join(name))).collect())
}

fn read_entry(path: &Path) -> Result<Entry, Error> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let envelope: Envelope = serde_json::from_slice(&bytes).map_err(|error| Error::Malformed {
        path: path.display().to_string(),
        // The position only: serde's message may quote the content.
        problem: format!("not a journal record (line {}, column {})", error.line(), error.column()),
    })?;
    Ok(Entry {
        database: envelope.database_id,
        kind: envelope.kind,
        record: envelope.record,
        file: RecordFile { path: path.to_owned() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_record_is_written_whole_private_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("journal"));
        assert!(journal.entries().await.unwrap().is_empty(), "no directory, no records");
        let database = DatabaseId::new();
        let record = serde_json::json!({"answer": 42});
        let file = journal.for_database(database).write("test-kind", record.clone()).await.unwrap();
        assert!(file.path().file_name().unwrap().to_string_lossy().starts_with("test-kind-"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "a record may hold a password");
            let mode = std::fs::metadata(journal.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }

        let entries = journal.entries().await.unwrap();
        assert_eq!(entries.len(), 1);
        let entry = entries[0].as_ref().unwrap();
        assert_eq!((entry.database, entry.kind.as_str(), &entry.record), (database, "test-kind", &record));
        entry.file.remove().await.unwrap();
        entry.file.remove().await.unwrap();
        assert!(journal.entries().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unfinished_writes_are_swept_and_bad_records_kept_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        std::fs::write(dir.path().join(".tmp-redis-replication-1.json"), b"{\"database_id\":").unwrap();
        std::fs::write(dir.path().join("redis-replication-2.json"), b"{\"secret\": \"hunter2\"").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a record").unwrap();

        let entries = journal.entries().await.unwrap();
        assert_eq!(entries.len(), 1);
        let error = entries[0].as_ref().unwrap_err().to_string();
        assert!(
            error.contains("redis-replication-2.json") && error.contains("not a journal record"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "the content is never shown: {error}");
        assert!(!dir.path().join(".tmp-redis-replication-1.json").exists(), "a torn write is swept");
        assert!(dir.path().join("redis-replication-2.json").exists(), "a bad record is kept");
    }
}
