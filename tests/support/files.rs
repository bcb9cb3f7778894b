//! Looking at what a backup stored: paths of `file://` URIs, checksums, decompression
//! with the standard command-line tools, and listings of destination directories.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

use super::pb;

/// The path of a program on PATH; panics with `hint` (how to install it) when missing.
pub(crate) fn tool(name: &str, hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{hint}"))
}

/// The local path of a `file://` URI.
pub(crate) fn path_of_uri(uri: &str) -> PathBuf {
    let url = url::Url::parse(uri).unwrap_or_else(|error| panic!("'{uri}' is not a URI: {error}"));
    assert_eq!(url.scheme(), "file", "expected a file:// URI, got {uri}");
    url.to_file_path().unwrap_or_else(|()| panic!("'{uri}' has no local path"))
}

/// The `file://` URI of a directory, as a destination takes it.
pub(crate) fn uri_of_dir(dir: &Path) -> String {
    url::Url::from_file_path(dir).expect("absolute path").to_string()
}

/// Compresses `path` with `tool` (`gzip`, `zstd`), keeping it: the new file is
/// `path` with `suffix` added.
pub(crate) fn compress(path: &Path, tool: &str, suffix: &str) -> PathBuf {
    let output = PathBuf::from(format!("{}{suffix}", path.display()));
    let status = Command::new(tool)
        .args(["-q", "-k", "-f"])
        .arg(path)
        .status()
        .unwrap_or_else(|error| panic!("{tool} is needed (scripts/test installs it): {error}"));
    assert!(status.success() && output.exists(), "{tool} made {}", output.display());
    output
}

/// SHA-256 of a file, as 64 lowercase hex digits.
pub(crate) fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// Decompresses a stored backup object into `output` with `zstd -d`, `gunzip -c`, or a
/// copy for uncompressed objects.
pub(crate) fn decompress(object: &Path, compression: pb::Compression, output: &Path) {
    match compression {
        pb::Compression::Zstd => {
            let zstd =
                tool("zstd", "zstd not found: run scripts/test (it installs it) or apt-get install zstd");
            let result =
                Command::new(zstd).arg("-d").arg("-q").arg("-f").arg(object).arg("-o").arg(output).output();
            check_tool("zstd -d", result);
        }
        pb::Compression::Gzip => {
            let gunzip = tool("gunzip", "gunzip not found: apt-get install gzip");
            let file = std::fs::File::create(output).expect("create the decompressed rdb");
            let result = Command::new(gunzip).arg("-c").arg(object).stdout(file).output();
            check_tool("gunzip -c", result);
        }
        pb::Compression::None => {
            std::fs::copy(object, output).expect("copy the rdb");
        }
        pb::Compression::Unspecified => panic!("a stored backup always has a compression"),
    }
}

fn check_tool(what: &str, result: std::io::Result<std::process::Output>) {
    let output = result.unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    assert!(output.status.success(), "{what} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// Every regular file under `dir`, hidden ones included (empty when `dir` is absent).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(path),
                Ok(kind) if kind.is_file() => found.push(path),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

/// The files under `dir` that a reader of the destination would see: none of the path
/// components below `dir` is hidden (temporary `.name.partial-*` files are).
pub(crate) fn visible_files_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|path| {
            let relative = path.strip_prefix(dir).unwrap_or(path);
            !relative.components().any(|part| part.as_os_str().to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}\n{text}", path.display()))
}
