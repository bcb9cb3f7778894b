//! The versions the engines' tools report for `--version`, read once per executable
//! and remembered while its file stays the same (size, modification time, inode), for
//! at most [`MAX_AGE`].
//!
//! Finding `pg_dump` means asking every copy installed which version it is: on Debian,
//! `/usr/bin/pg_dump` is a Perl wrapper that takes a tenth of a second to answer, and an
//! operation asks for two or three tools. Remembering the answers takes that off every
//! operation but the first, and [`crate::engine::Engine::prepare`] takes it off the
//! first too. The age limit catches what the file's own stamp cannot: a wrapper answers
//! for whichever versions are installed beside it.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long a version read is trusted, even if the file did not change.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// The versions read so far, shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct VersionCache {
    entries: Arc<Mutex<HashMap<PathBuf, Entry>>>,
}

#[derive(Debug, Clone)]
struct Entry {
    stamp: Stamp,
    read_at: Instant,
    version: String,
}

/// What tells one version of a file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
    device: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        // Follows links: a replaced target changes the stamp.
        let metadata = std::fs::metadata(path).ok()?;
        Some(Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode: metadata.ino(),
            device: metadata.dev(),
        })
    }
}

impl VersionCache {
    /// The version `path` reports, read with `read` unless a read of the same file
    /// younger than [`MAX_AGE`] is remembered. A failed read (`None`) is not
    /// remembered: the next call tries again.
    pub async fn version_of<F, Fut>(&self, path: &Path, read: F) -> Option<String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<String>>,
    {
        let stamp = Stamp::of(path)?;
        if let Some(version) = self.remembered(path, stamp, Instant::now()) {
            return Some(version);
        }
        let version = read().await?;
        let entry = Entry { stamp, read_at: Instant::now(), version: version.clone() };
        self.lock().insert(path.to_owned(), entry);
        Some(version)
    }

    fn remembered(&self, path: &Path, stamp: Stamp, now: Instant) -> Option<String> {
        let entries = self.lock();
        let entry = entries.get(path)?;
        let fresh = entry.stamp == stamp && now.saturating_duration_since(entry.read_at) < MAX_AGE;
        fresh.then(|| entry.version.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Caches are remembered facts, not settings: two tool paths are equal whatever they
/// have read.
impl PartialEq for VersionCache {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for VersionCache {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn read_counting(
        cache: &VersionCache,
        path: &Path,
        reads: &AtomicUsize,
        answer: Option<&str>,
    ) -> Option<String> {
        cache
            .version_of(path, || async {
                reads.fetch_add(1, Ordering::SeqCst);
                answer.map(str::to_owned)
            })
            .await
    }

    #[tokio::test]
    async fn a_file_is_asked_once_while_it_stays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg_dump");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        let (cache, reads) = (VersionCache::default(), AtomicUsize::new(0));

        assert_eq!(read_counting(&cache, &path, &reads, Some("15.18")).await.as_deref(), Some("15.18"));
        assert_eq!(
            read_counting(&cache.clone(), &path, &reads, Some("99.0")).await.as_deref(),
            Some("15.18")
        );
        assert_eq!(reads.load(Ordering::SeqCst), 1, "a clone shares what was read");
    }

    #[tokio::test]
    async fn a_changed_file_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pg_dump");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        let (cache, reads) = (VersionCache::default(), AtomicUsize::new(0));
        read_counting(&cache, &path, &reads, Some("15.18")).await;

        std::fs::write(&path, "#!/bin/sh\n# upgraded\n").unwrap();
        assert_eq!(read_counting(&cache, &path, &reads, Some("16.4")).await.as_deref(), Some("16.4"));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_and_missing_files_are_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("psql");
        let (cache, reads) = (VersionCache::default(), AtomicUsize::new(0));
        assert_eq!(read_counting(&cache, &path, &reads, Some("15.18")).await, None, "no file, no read");
        assert_eq!(reads.load(Ordering::SeqCst), 0);

        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        assert_eq!(read_counting(&cache, &path, &reads, None).await, None);
        assert_eq!(read_counting(&cache, &path, &reads, Some("15.18")).await.as_deref(), Some("15.18"));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn old_reads_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mariadb");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        let cache = VersionCache::default();
        let stamp = Stamp::of(&path).unwrap();
        let read_at = Instant::now();
        cache.lock().insert(path.clone(), Entry { stamp, read_at, version: "10.11.6".to_owned() });

        assert_eq!(cache.remembered(&path, stamp, read_at + MAX_AGE / 2).as_deref(), Some("10.11.6"));
        assert_eq!(cache.remembered(&path, stamp, read_at + MAX_AGE), None);
    }
}
