//! Local-disk storage: objects are files under a root directory, written to a temporary
//! file beside their final path and renamed into place on commit.
//!
//! Durability on commit: the temporary file is fsynced, renamed over the key's path (an
//! atomic replace on POSIX file systems) and the directory is fsynced, so after `commit`
//! returns the object survives a crash, and before it the old object (if any) is intact.
//! A crash mid-write leaves a `.<name>.partial-<uuid>` file, which
//! [`LocalStorage::sweep_partials`] removes at the next start.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::fs::{self, File};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufReader, BufWriter};

use super::{Error, ObjectMeta, ObjectReader, ObjectWriter, Storage, check_key, check_prefix};

/// Marks temporary files: `.<file name>.partial-<uuid>`.
const PARTIAL_MARKER: &str = ".partial-";

/// Buffer size for writing and reading object files.
const BUFFER_SIZE: usize = 256 * 1024;

/// How many times `writer` recreates a parent directory that a concurrent `delete` pruned
/// between creating it and creating the temporary file in it.
const CREATE_ATTEMPTS: usize = 5;

/// Objects stored as files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage rooted at `root`, which should be absolute (a relative root is resolved
    /// against the current directory now). Nothing is touched until the first write,
    /// which creates the root.
    pub fn new(root: PathBuf) -> Self {
        let root = std::path::absolute(&root).unwrap_or(root);
        LocalStorage { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the temporary files of writes that never finished (a crash, a kill) and
    /// the directories that leaves empty; returns how many files were removed.
    ///
    /// Only files last modified at least `min_age` ago are removed, so that a sweep run by
    /// one process never removes the file another process sharing the root is writing.
    /// At the start of the only process using the root, pass [`Duration::ZERO`]. A missing
    /// root is not an error.
    pub async fn sweep_partials(&self, min_age: Duration) -> Result<u64, Error> {
        let storage = self.clone();
        let sweep = tokio::task::spawn_blocking(move || storage.sweep_partials_blocking(min_age));
        sweep.await.map_err(|error| self.io_error_at(&self.root, std::io::Error::other(error)))?
    }

    fn sweep_partials_blocking(&self, min_age: Duration) -> Result<u64, Error> {
        let mut removed = 0;
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == ErrorKind::NotFound => continue,
                Err(error) => return Err(self.io_error_at(&dir, error)),
            };
            for entry in entries {
                let entry = entry.map_err(|error| self.io_error_at(&dir, error))?;
                let path = entry.path();
                let file_type = entry.file_type().map_err(|error| self.io_error_at(&path, error))?;
                if file_type.is_dir() {
                    pending.push(path);
                } else if is_partial_name(&entry.file_name().to_string_lossy())
                    && is_older_than(&entry, min_age)
                {
                    match std::fs::remove_file(&path) {
                        Ok(()) => removed += 1,
                        Err(error) if error.kind() == ErrorKind::NotFound => {}
                        Err(error) => return Err(self.io_error_at(&path, error)),
                    }
                    self.prune_empty_parents_blocking(&path);
                }
            }
        }
        Ok(removed)
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let start = if prefix.is_empty() { self.root.clone() } else { self.root.join(prefix) };
        let mut objects = Vec::new();
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if is_absent(&error) => continue,
                Err(error) => return Err(self.io_error_at(&dir, error)),
            };
            for entry in entries {
                let entry = entry.map_err(|error| self.io_error_at(&dir, error))?;
                let path = entry.path();
                let metadata = entry.metadata().map_err(|error| self.io_error_at(&path, error))?;
                if metadata.is_dir() {
                    pending.push(path);
                } else if metadata.is_file() && !is_partial_name(&entry.file_name().to_string_lossy()) {
                    let Ok(relative) = path.strip_prefix(&self.root) else { continue };
                    let key =
                        relative.iter().map(|part| part.to_string_lossy()).collect::<Vec<_>>().join("/");
                    objects.push(ObjectMeta { key, size: metadata.len() });
                }
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The path of a valid key under the root.
    fn path_of(&self, key: &str) -> Result<PathBuf, Error> {
        check_key(key)?;
        if key.split('/').any(is_partial_name) {
            return Err(Error::InvalidKey {
                key: key.to_owned(),
                reason: "names of the form .<name>.partial-<id> are reserved for unfinished writes",
            });
        }
        Ok(self.root.join(key))
    }

    /// The key of a path under the root for error messages; the root's own path for the
    /// root.
    fn key_of(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(relative) if !relative.as_os_str().is_empty() => relative.to_string_lossy().into_owned(),
            _ => path.to_string_lossy().into_owned(),
        }
    }

    fn io_error_at(&self, path: &Path, source: std::io::Error) -> Error {
        Error::Io { key: self.key_of(path), source }
    }

    /// Removes the directories between `path` and the root that are empty, deepest first,
    /// stopping at the first one that is not (or cannot be removed). Best effort: a
    /// directory left behind is harmless.
    fn prune_empty_parents_blocking(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(current) = dir {
            if current == self.root || !current.starts_with(&self.root) {
                return;
            }
            if std::fs::remove_dir(current).is_err() {
                return;
            }
            dir = current.parent();
        }
    }

    async fn prune_empty_parents(&self, path: &Path) {
        let storage = self.clone();
        let path = path.to_owned();
        // A failed or cancelled prune only leaves empty directories behind.
        let _ = tokio::task::spawn_blocking(move || storage.prune_empty_parents_blocking(&path)).await;
    }

    /// Creates the parent directory and a fresh temporary file in it for `path`.
    async fn create_partial(&self, key: &str, path: &Path) -> Result<(PathBuf, File), Error> {
        let io_error = |source| Error::Io { key: key.to_owned(), source };
        let parent = path.parent().unwrap_or(&self.root);
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let mut attempt = 0;
        loop {
            attempt += 1;
            fs::create_dir_all(parent).await.map_err(io_error)?;
            let partial =
                parent.join(format!(".{file_name}{PARTIAL_MARKER}{}", uuid::Uuid::new_v4().simple()));
            match fs::OpenOptions::new().write(true).create_new(true).open(&partial).await {
                Ok(file) => return Ok((partial, file)),
                // A concurrent delete pruned the directory we just created: create it again.
                Err(error) if error.kind() == ErrorKind::NotFound && attempt < CREATE_ATTEMPTS => continue,
                Err(error) => return Err(io_error(error)),
            }
        }
    }
}

/// Whether a file name is one of our temporary files.
fn is_partial_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(PARTIAL_MARKER)
}

fn is_older_than(entry: &std::fs::DirEntry, min_age: Duration) -> bool {
    if min_age.is_zero() {
        return true;
    }
    let modified = entry.metadata().and_then(|metadata| metadata.modified());
    match modified.map(|time| SystemTime::now().duration_since(time)) {
        Ok(Ok(age)) => age >= min_age,
        // A modification time in the future, or none at all: leave the file alone.
        _ => false,
    }
}

/// Whether an error means "nothing at this path that could be an object".
fn is_absent(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory)
}

#[async_trait]
impl Storage for LocalStorage {
    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>, Error> {
        let path = self.path_of(key)?;
        let (partial, file) = self.create_partial(key, &path).await?;
        Ok(Box::new(LocalWriter {
            key: key.to_owned(),
            path,
            partial: Some(partial),
            file: Some(BufWriter::with_capacity(BUFFER_SIZE, file)),
            written: 0,
        }))
    }

    async fn reader(&self, key: &str, offset: u64) -> Result<ObjectReader, Error> {
        let path = self.path_of(key)?;
        let not_found = || Error::NotFound { key: key.to_owned() };
        let io_error = |source| Error::Io { key: key.to_owned(), source };
        let mut file = match File::open(&path).await {
            Ok(file) => file,
            Err(error) if is_absent(&error) => return Err(not_found()),
            Err(error) => return Err(io_error(error)),
        };
        let metadata = file.metadata().await.map_err(io_error)?;
        if !metadata.is_file() {
            return Err(not_found());
        }
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset)).await.map_err(io_error)?;
        }
        Ok(ObjectReader {
            size: Some(metadata.len()),
            body: Box::pin(BufReader::with_capacity(BUFFER_SIZE, file)),
        })
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, Error> {
        let path = self.path_of(key)?;
        match fs::metadata(&path).await {
            Ok(metadata) if metadata.is_file() => {
                Ok(Some(ObjectMeta { key: key.to_owned(), size: metadata.len() }))
            }
            Ok(_) => Ok(None),
            Err(error) if is_absent(&error) => Ok(None),
            Err(source) => Err(Error::Io { key: key.to_owned(), source }),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path_of(key)?;
        match fs::symlink_metadata(&path).await {
            Ok(metadata) if metadata.is_dir() => return Ok(()),
            Ok(_) => {}
            Err(error) if is_absent(&error) => return Ok(()),
            Err(source) => return Err(Error::Io { key: key.to_owned(), source }),
        }
        match fs::remove_file(&path).await {
            Ok(()) => {}
            Err(error) if is_absent(&error) => {}
            Err(source) => return Err(Error::Io { key: key.to_owned(), source }),
        }
        self.prune_empty_parents(&path).await;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let prefix = check_prefix(prefix)?.to_owned();
        let storage = self.clone();
        let listing = tokio::task::spawn_blocking(move || storage.list_blocking(&prefix));
        listing.await.map_err(|error| self.io_error_at(&self.root, std::io::Error::other(error)))?
    }

    fn uri(&self, key: &str) -> String {
        let path = self.root.join(key);
        match url::Url::from_file_path(&path) {
            Ok(url) => url.to_string(),
            Err(()) => format!("file://{}", path.display()),
        }
    }
}

/// An object being written to `.<name>.partial-<uuid>` beside its final path.
#[derive(Debug)]
struct LocalWriter {
    key: String,
    /// The final path.
    path: PathBuf,
    /// The temporary file; `None` once it was renamed into place or removed.
    partial: Option<PathBuf>,
    /// `None` after a cancelled write left the file in an unknown state.
    file: Option<BufWriter<File>>,
    written: u64,
}

impl LocalWriter {
    fn io_error(&self, source: std::io::Error) -> Error {
        Error::Io { key: self.key.clone(), source }
    }

    fn poisoned(&self) -> Error {
        self.io_error(std::io::Error::other("an earlier write was cancelled or failed"))
    }
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        // Take the file while writing: if this future is dropped mid-way, or the write
        // fails, the writer stays poisoned and can only be aborted.
        let Some(mut file) = self.file.take() else { return Err(self.poisoned()) };
        file.write_all(&chunk).await.map_err(|error| self.io_error(error))?;
        self.written += chunk.len() as u64;
        self.file = Some(file);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, Error> {
        let Some(mut file) = self.file.take() else { return Err(self.poisoned()) };
        let Some(partial) = self.partial.clone() else { return Err(self.poisoned()) };
        file.flush().await.map_err(|error| self.io_error(error))?;
        let file = file.into_inner();
        file.sync_all().await.map_err(|error| self.io_error(error))?;
        drop(file);
        fs::rename(&partial, &self.path).await.map_err(|error| self.io_error(error))?;
        self.partial = None;
        // From here the object is visible; a failure below only means it may not survive
        // a crash, and is reported so that the caller does not count on it.
        let parent = self.path.parent().map(Path::to_owned).unwrap_or_default();
        // Make the rename itself durable.
        let sync_dir = tokio::task::spawn_blocking(move || std::fs::File::open(parent)?.sync_all())
            .await
            .map_err(std::io::Error::other)
            .and_then(|result| result);
        sync_dir.map_err(|error| self.io_error(error))?;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        drop(self.file.take());
        let Some(partial) = self.partial.take() else { return Ok(()) };
        match fs::remove_file(&partial).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(self.io_error(error)),
        }
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Neither committed nor aborted: remove the temporary file now, synchronously,
        // as Drop cannot wait. A failure leaves a partial file for `sweep_partials`.
        if let Some(partial) = self.partial.take() {
            let _ = std::fs::remove_file(partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, LocalStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("root"));
        (dir, storage)
    }

    /// Every file under `dir`, relative to it.
    fn files_under(dir: &Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&current) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        files.sort();
        files
    }

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let (_dir, storage) = storage();
        crate::storage::suite::run_all(&storage).await;
        assert_eq!(files_under(storage.root()), Vec::<String>::new(), "the suite cleans up after itself");
    }

    #[tokio::test]
    async fn objects_are_plain_files_and_temporaries_are_hidden_beside_them() {
        let (_dir, storage) = storage();
        let mut writer = storage.writer("db/backup/dump.rdb").await.unwrap();
        writer.write(Bytes::from_static(b"hello")).await.unwrap();
        let during = files_under(storage.root());
        assert_eq!(during.len(), 1);
        assert!(during[0].starts_with("db/backup/.dump.rdb.partial-"), "{during:?}");
        assert_eq!(writer.commit().await.unwrap(), 5);
        assert_eq!(files_under(storage.root()), ["db/backup/dump.rdb"]);
        assert_eq!(std::fs::read(storage.root().join("db/backup/dump.rdb")).unwrap(), b"hello");
    }

    #[tokio::test]
    async fn abort_and_drop_remove_the_temporary_file() {
        let (_dir, storage) = storage();
        let mut aborted = storage.writer("a/x").await.unwrap();
        aborted.write(Bytes::from_static(b"1")).await.unwrap();
        aborted.abort().await.unwrap();
        let mut dropped = storage.writer("a/y").await.unwrap();
        dropped.write(Bytes::from_static(b"2")).await.unwrap();
        drop(dropped);
        assert_eq!(files_under(storage.root()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn delete_prunes_empty_directories_but_not_the_root() {
        let (_dir, storage) = storage();
        for key in ["a/b/c/one", "a/two"] {
            let mut writer = storage.writer(key).await.unwrap();
            writer.write(Bytes::from_static(b"x")).await.unwrap();
            writer.commit().await.unwrap();
        }
        storage.delete("a/b/c/one").await.unwrap();
        assert!(!storage.root().join("a/b").exists());
        assert!(storage.root().join("a").is_dir());
        storage.delete("a/two").await.unwrap();
        assert!(!storage.root().join("a").exists());
        assert!(storage.root().is_dir());
        // A key naming a directory is not an object.
        let mut writer = storage.writer("d/e").await.unwrap();
        writer.write(Bytes::from_static(b"x")).await.unwrap();
        writer.commit().await.unwrap();
        assert_eq!(storage.stat("d").await.unwrap(), None);
        assert!(matches!(storage.reader("d", 0).await, Err(Error::NotFound { .. })));
        storage.delete("d").await.unwrap();
        assert!(storage.stat("d/e").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn sweep_removes_only_stale_partials() {
        let (_dir, storage) = storage();
        let mut committed = storage.writer("db/kept").await.unwrap();
        committed.write(Bytes::from_static(b"kept")).await.unwrap();
        committed.commit().await.unwrap();
        // A crash leaves temporary files behind: simulate with files of the same shape.
        std::fs::write(storage.root().join("db/.kept.partial-0123"), b"half").unwrap();
        std::fs::create_dir_all(storage.root().join("other/deep")).unwrap();
        std::fs::write(storage.root().join("other/deep/.dump.partial-4567"), b"half").unwrap();
        let live = storage.writer("db/live").await.unwrap();

        assert_eq!(storage.sweep_partials(Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(files_under(storage.root()).len(), 4);

        drop(live);
        assert_eq!(storage.sweep_partials(Duration::ZERO).await.unwrap(), 2);
        assert_eq!(files_under(storage.root()), ["db/kept"]);
        assert!(!storage.root().join("other").exists(), "emptied directories are pruned");
    }

    #[tokio::test]
    async fn sweep_of_a_missing_root_is_a_no_op() {
        let (_dir, storage) = storage();
        assert_eq!(storage.sweep_partials(Duration::ZERO).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn temporary_file_names_are_reserved() {
        let (_dir, storage) = storage();
        for key in ["db/.dump.partial-0123", ".x.partial-1/dump"] {
            assert!(matches!(storage.writer(key).await, Err(Error::InvalidKey { .. })), "{key}");
        }
        assert!(storage.stat("db/dump.partial-0123").await.is_ok(), "only hidden names are reserved");
    }

    #[test]
    fn uris_are_absolute_file_uris() {
        let storage = LocalStorage::new(PathBuf::from("/var/backups"));
        assert_eq!(storage.uri("db/a b/dump.rdb"), "file:///var/backups/db/a%20b/dump.rdb");
        let relative = LocalStorage::new(PathBuf::from("data"));
        assert!(relative.root().is_absolute());
        assert!(relative.uri("k").starts_with("file:///"));
    }

    #[tokio::test]
    async fn a_cancelled_write_poisons_the_writer() {
        let (_dir, storage) = storage();
        // Poll a write larger than one file operation once, then drop it mid-way. An idle
        // blocking pool can finish the whole write within that one poll: try again with a
        // fresh writer until a poll is caught mid-way.
        let mut attempts = 0;
        let mut writer = loop {
            attempts += 1;
            let mut writer = storage.writer("k").await.unwrap();
            let pending = {
                let write = writer.write(Bytes::from(vec![7u8; 8 << 20]));
                futures::pin_mut!(write);
                futures::poll!(write).is_pending()
            };
            if pending {
                break writer;
            }
            writer.abort().await.unwrap();
            assert!(attempts < 100, "no write was ever caught mid-way");
        };
        let error = writer.write(Bytes::from_static(b"more")).await.unwrap_err();
        assert!(error.to_string().contains("cancelled"), "{error}");
        writer.abort().await.unwrap();
        assert_eq!(files_under(storage.root()), Vec::<String>::new());
    }
}
