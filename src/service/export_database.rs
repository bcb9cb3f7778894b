//! Exporting a registered database: a fresh snapshot written to a location the request
//! names (Redis Enterprise's export), outside the catalog. The location is checked here
//! like an import source (file roots, the URL policy, object-store endpoints), then
//! opened as an unregistered destination whose root is the URI's directory.

use std::path::Path;
use std::sync::Arc;

use super::{Cellar, Error, ExportDatabase};
use crate::domain::{
    Compression, Database, Destination, EngineKind, Invalid, Operation, OperationKind, ResourceName, reason,
};
use crate::jobs::{ExportJob, export_file_name};
use crate::operations::Submission;
use crate::storage::location::ObjectLocation;
use crate::storage::{self, Storage};

/// The request field every location problem is reported against.
const FIELD: &str = "export_uri";

impl Cellar {
    /// Starts writing a fresh snapshot of a database to `request.export_uri`; returns
    /// the operation. The database is busy for other data operations meanwhile.
    pub async fn export_database(&self, request: ExportDatabase) -> Result<Operation, Error> {
        if let Some(existing) =
            self.existing_operation(OperationKind::ExportDatabase, &request.request_id).await?
        {
            return Ok(existing);
        }
        let database = self.store.get_database(request.database_id).await?;
        let engine = self.engine(database.engine)?;
        let database_name = logical_database(&database, &request.database_name)?;
        let uri = as_directory_if_one(request.export_uri.expose());
        let (root, file) = split(&uri).map_err(|problem| Invalid::field(FIELD, problem))?;
        let format = super::backups::format_of(database.engine);
        let compression = compression(&request, file.as_deref(), &database)?;
        let key = file.unwrap_or_else(|| {
            export_file_name(database.name.as_str(), crate::domain::now(), format, compression)
        });
        let storage = self.export_storage(&root, &request).await?;
        let shown = crate::domain::redact_uri(storage.uri(&key).as_str());
        let job = ExportJob::new(engine, database.clone(), storage, key, compression, database_name, shown);
        let submission = Submission {
            kind: OperationKind::ExportDatabase,
            database_id: Some(database.id),
            backup: None,
            insert_backup: false,
            request_id: request.request_id,
            job: Arc::new(job),
        };
        Ok(self.manager.submit(submission).await?)
    }

    // Opens the directory `root` as a store, after the same checks an import source
    // gets: `file://` only under an allowed root, ftp and http(s) hosts and object-store
    // endpoints by the URL policy.
    async fn export_storage(
        &self,
        root: &url::Url,
        request: &ExportDatabase,
    ) -> Result<Arc<dyn Storage>, Error> {
        let credentials: Vec<(&str, &str)> =
            request.credentials.iter().map(|(key, value)| (key.as_str(), value.expose())).collect();
        let name = ResourceName::parse("export").map_err(|problem| Error::Internal(problem.to_string()))?;
        let destination = Destination::unregistered(name, root.as_str(), &credentials, &[]);
        match root.scheme() {
            "file" => self.check_export_directory(root)?,
            "http" | "https" => self.check_url(FIELD, root).await?,
            "ftp" => self.check_ftp_host(FIELD, root).await?,
            "s3" | "gs" | "abs" | "az" => self.check_endpoint(FIELD, &destination).await?,
            other => {
                return Err(Invalid::field(
                    FIELD,
                    format!(
                        "{other}:// locations are not supported; use file://, ftp://, http(s):// (WebDAV), \
                         s3://, gs://, abs:// or az://"
                    ),
                )
                .into());
            }
        }
        storage::open_with(&destination, &self.http).map_err(|error| match error {
            storage::Error::InvalidDestination(problem) => Invalid::field(FIELD, problem).into(),
            storage::Error::Unsupported(scheme) => {
                Invalid::field(FIELD, format!("{scheme}:// locations are not supported")).into()
            }
            other => Error::Internal(other.to_string()),
        })
    }

    fn check_export_directory(&self, root: &url::Url) -> Result<(), Error> {
        let Ok(path) = root.to_file_path() else {
            return Err(Invalid::field(FIELD, "is not an absolute local path").into());
        };
        let resolved = std::fs::canonicalize(&path).map_err(|error| {
            Invalid::field(FIELD, format!("cannot use the directory {}: {error}", path.display()))
        })?;
        if !self.under_a_root(&resolved) {
            return Err(Error::PermissionDenied {
                reason: reason::URL_NOT_ALLOWED,
                message: format!(
                    "{FIELD}: {} is not under an allowed file root (see --file-root)",
                    path.display()
                ),
            });
        }
        Ok(())
    }

    // An http(s) host the URL policy allows; a field problem is INVALID_ARGUMENT.
    pub(super) async fn check_url(&self, field: &str, url: &url::Url) -> Result<(), Error> {
        self.allowed_url(field, url).await?.map(drop).map_err(|problem| Invalid::field(field, problem).into())
    }

    // An ftp host and port the URL policy allows, judged as an http URL to the same.
    pub(super) async fn check_ftp_host(&self, field: &str, url: &url::Url) -> Result<(), Error> {
        let Some(host) = url.host() else {
            return Err(Invalid::field(field, "an ftp URL needs a host").into());
        };
        let probe = url::Url::parse(&format!("http://{host}:{}/", url.port().unwrap_or(21)))
            .map_err(|_| Invalid::field(field, "the host is not valid"))?;
        self.check_url(field, &probe).await
    }

    // An object store's `endpoint` option the URL policy allows (none: the cloud's
    // own); problems are reported against `field`.
    pub(super) async fn check_endpoint(&self, field: &str, destination: &Destination) -> Result<(), Error> {
        let location = match ObjectLocation::parse(destination) {
            Ok(Some(location)) => location,
            Ok(None) => return Err(Invalid::field(field, "is not an object-store URI").into()),
            Err(error) => return Err(Invalid::field(field, location_problem(&error)).into()),
        };
        let Some(endpoint) = location.endpoint() else { return Ok(()) };
        let endpoint =
            url::Url::parse(endpoint).map_err(|_| Invalid::field(field, "option endpoint is not a URL"))?;
        self.check_url(field, &endpoint).await
    }
}

// The logical database to export: the one asked for, else the one the connection URI
// names; none for Redis. A SQL server registered without a database needs one named.
fn logical_database(database: &Database, asked: &str) -> Result<Option<String>, Error> {
    if database.engine == EngineKind::Redis {
        if !asked.is_empty() {
            return Err(Invalid::field(
                "database_name",
                "must be empty for Redis: an export holds every numbered database",
            )
            .into());
        }
        return Ok(None);
    }
    if !asked.is_empty() {
        return Ok(Some(asked.to_owned()));
    }
    let path = database.connection_uri.expose().path().trim_start_matches('/').to_owned();
    if path.is_empty() {
        return Err(Invalid::field(
            "database_name",
            format!(
                "is required: {} is registered without a database, and an export holds one",
                database.name
            ),
        )
        .into());
    }
    Ok(Some(percent_encoding::percent_decode_str(&path).decode_utf8_lossy().into_owned()))
}

// A `file://` URI naming an existing directory, written as one (with a trailing `/`):
// the export then goes into it rather than over it.
fn as_directory_if_one(uri: &url::Url) -> url::Url {
    let is_dir = uri.scheme() == "file" && uri.to_file_path().is_ok_and(|path| path.is_dir());
    let mut uri = uri.clone();
    if is_dir && !uri.path().ends_with('/') {
        let path = format!("{}/", uri.path());
        uri.set_path(&path);
    }
    uri
}

// The directory a location URI names, and the object's name in it (`None` for a URI
// ending in `/`: the name is then made up). The query (a store's options) stays on the
// directory.
fn split(uri: &url::Url) -> Result<(url::Url, Option<String>), String> {
    let path = uri.path();
    if path.is_empty() || path.ends_with('/') {
        return Ok((uri.clone(), None));
    }
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .map_err(|_| "the file name is not UTF-8".to_owned())?;
    if name == "." || name == ".." || name.contains('/') {
        return Err(format!("'{name}' is not a file name"));
    }
    let mut root = uri.clone();
    root.set_path(&format!("{dir}/"));
    Ok((root, Some(name.into_owned())))
}

// The compression asked for, else the one the file name's suffix says, else (for a
// directory) the database's policy. A suffix that says another compression than the
// one asked for is refused: the file would lie about its content.
fn compression(
    request: &ExportDatabase,
    file: Option<&str>,
    database: &Database,
) -> Result<Compression, Error> {
    let Some(file) = file else {
        return Ok(request.compression.unwrap_or(database.backup_policy.compression));
    };
    let suffix = suffix_compression(file);
    match (request.compression, suffix) {
        (None, suffix) => Ok(suffix.unwrap_or(Compression::None)),
        (Some(asked), Some(said)) if asked != said => {
            Err(Invalid::field("compression", format!("is {asked}, but the file name {file} says {said}"))
                .into())
        }
        (Some(asked), _) => Ok(asked),
    }
}

fn suffix_compression(file: &str) -> Option<Compression> {
    let extension = Path::new(file).extension()?.to_str()?;
    match extension.to_ascii_lowercase().as_str() {
        "gz" | "gzip" => Some(Compression::Gzip),
        "zst" | "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

fn location_problem(error: &storage::Error) -> String {
    error.to_string().trim_start_matches("invalid destination uri: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_split(uri: &str, root: &str, file: Option<&str>) {
        let (got_root, got_file) = split(&url::Url::parse(uri).unwrap()).unwrap();
        assert_eq!((got_root.as_str(), got_file.as_deref()), (root, file), "{uri}");
    }

    #[test]
    fn a_location_is_a_directory_and_a_file_name() {
        check_split("ftp://u:p@h:2121/exports/db.rdb.gz", "ftp://u:p@h:2121/exports/", Some("db.rdb.gz"));
        check_split("ftp://h/exports/", "ftp://h/exports/", None);
        check_split(
            "s3://bucket/a/b.pgdump.zst?region=eu-west-1",
            "s3://bucket/a/?region=eu-west-1",
            Some("b.pgdump.zst"),
        );
        check_split("s3://bucket/dump.rdb", "s3://bucket/", Some("dump.rdb"));
        check_split("file:///srv/exports/my%20db.sql", "file:///srv/exports/", Some("my db.sql"));
        assert!(split(&url::Url::parse("file:///srv/exports/..%2Fetc").unwrap()).is_err());
        assert!(
            split(&url::Url::parse("ftp://h/exports/..").unwrap())
                .is_ok_and(|(root, file)| { root.path() == "/" && file.is_none() })
        );
    }

    #[test]
    fn compression_comes_from_the_request_or_the_suffix() {
        assert_eq!(suffix_compression("db.rdb.gz"), Some(Compression::Gzip));
        assert_eq!(suffix_compression("db.pgdump.ZST"), Some(Compression::Zstd));
        assert_eq!(suffix_compression("db.rdb"), None);
        assert_eq!(suffix_compression("db"), None);
    }
}
