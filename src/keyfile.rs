//! Key files Cellar generates and reads (the catalog key, the download link key):
//! written whole, mode 0600, under a temporary name then renamed, so that a crash never
//! leaves a short key; read with a warning when other users could read them.

use std::io::Write as _;
use std::path::Path;

/// Writes `contents` to a new private file at `path` (mode 0600; its directory, if
/// `private_dir`, created 0700): whole under a temporary name, synced, then renamed.
pub fn write_private(path: &Path, contents: &[u8], private_dir: bool) -> std::io::Result<()> {
    if private_dir && let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let mut file = private_file(&temporary)?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Logs a warning naming `what` when the file at `path` is readable by other users.
#[cfg(unix)]
pub fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the {what} file is readable by other users; chmod 600 it");
    }
}

/// Logs a warning naming `what` when the file at `path` is readable by other users.
#[cfg(not(unix))]
pub fn warn_if_readable_by_others(_path: &Path, _what: &str) {}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_file_is_written_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/key");
        write_private(&path, b"abc\n", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc\n");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        }
    }
}
