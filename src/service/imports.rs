//! Importing into registered databases: from files under the allowed roots, from
//! http(s) URLs the URL policy allows, or from a live server of the same engine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Cellar, Error, ImportDatabase};
use crate::domain::{ConnectionUri, Database, EngineKind, Invalid, Operation, OperationKind, Secret, reason};
use crate::jobs::{ImportJob, ImportPlaces, ImportSource, SourceFile};
use crate::net::{self, Reach};
use crate::operations::Submission;
use crate::storage::location::ObjectLocation;
use crate::storage::object::ObjectStorage;

/// How long the early DNS check of an http(s) source may take before the request is
/// accepted anyway (the check at connect time still applies).
const EARLY_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

impl Cellar {
    /// Starts replacing a database's data with imported data; returns the operation.
    pub async fn import_database(&self, request: ImportDatabase) -> Result<Operation, Error> {
        if let Some(existing) =
            self.existing_operation(OperationKind::ImportDatabase, &request.request_id).await?
        {
            return Ok(existing);
        }
        let target = self.store.get_database(request.database_id).await?;
        let engine = self.loading_engine(&target)?;
        let redis = target.engine == EngineKind::Redis;
        if redis && !request.database_name.is_empty() {
            return Err(Invalid::field(
                "database_name",
                "must be empty for Redis: an import loads every numbered database it holds",
            )
            .into());
        }
        let source = match request.source_connection_uri {
            Some(uri) => {
                Database::check_engine_matches_uri(target.engine, &uri).map_err(|_| {
                    Invalid::field(
                        "source_connection_uri",
                        format!("must be a {} server, like the target database", target.engine),
                    )
                })?;
                if request.import_all_databases && !redis {
                    ImportSource::EveryDatabase(uri)
                } else {
                    ImportSource::Live(uri)
                }
            }
            None => ImportSource::Files(self.import_files(&request.source_uris).await?),
        };
        let database_name = Some(request.database_name).filter(|name| !name.is_empty());
        let job = ImportJob::new(engine, target.clone(), database_name, source, self.import_places());
        let submission = Submission {
            kind: OperationKind::ImportDatabase,
            database_id: Some(target.id),
            backup: None,
            insert_backup: false,
            request_id: request.request_id,
            job: Arc::new(job),
        };
        Ok(self.manager.submit(submission).await?)
    }

    /// Checks one source and says how to open it; the inner error is a problem of
    /// `field`. `credentials` (keys as a destination's) are for object stores.
    pub(super) async fn import_source(
        &self,
        field: &str,
        source: &url::Url,
        credentials: &BTreeMap<String, Secret>,
    ) -> Result<Result<SourceFile, String>, Error> {
        Ok(match source.scheme() {
            "file" => self.allowed_file(field, source)?.map(SourceFile::Local),
            "http" | "https" => self.allowed_url(field, source).await?.map(SourceFile::Http),
            "s3" | "gs" | "abs" | "az" => self.object_source(field, source, credentials).await?,
            "ftp" => self.allowed_ftp_url(field, source).await?.map(SourceFile::Ftp),
            other => {
                return Err(Error::Unimplemented(format!(
                    "{field}: imports from {other}:// sources are not supported; use file://, ftp://, \
                     http(s)://, s3://, gs://, abs:// or az://"
                )));
            }
        })
    }

    // Checks every source and says how to open it, in order: `file://` paths inside an
    // allowed root once resolved (so `..` and links cannot leave it), and ftp and http(s)
    // URLs the URL policy allows. Other schemes arrive with their storage.
    async fn import_files(&self, sources: &[url::Url]) -> Result<Vec<SourceFile>, Error> {
        let mut invalid = Invalid::default();
        let mut files = Vec::new();
        for (index, source) in sources.iter().enumerate() {
            let field = format!("source_uris[{index}]");
            match self.import_source(&field, source, &BTreeMap::new()).await? {
                Ok(file) => files.push(file),
                Err(problem) => invalid.add(field, problem),
            }
        }
        invalid.into_result(|| files).map_err(Error::from)
    }

    // An object-store source: options from the URI's query, credentials from its user
    // info or the server's environment; the inner error is a field problem. An
    // `endpoint` is a user-given URL like an http(s) source, so the URL policy applies
    // to it (at the RPC: `object_store`'s client resolves names on its own).
    async fn object_source(
        &self,
        field: &str,
        source: &url::Url,
        credentials: &BTreeMap<String, Secret>,
    ) -> Result<Result<SourceFile, String>, Error> {
        let problem = |error: crate::storage::Error| {
            error.to_string().trim_start_matches("invalid destination uri: ").to_owned()
        };
        let (location, key) = match ObjectLocation::parse_object_uri(source.as_str(), credentials) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(Err("is not an object-store URI".to_owned())),
            Err(error) => return Ok(Err(problem(error))),
        };
        if let Some(endpoint) = location.endpoint() {
            let Ok(endpoint) = url::Url::parse(endpoint) else {
                return Ok(Err("option endpoint is not a URL".to_owned()));
            };
            if let Err(refused) = self.allowed_url(field, &endpoint).await? {
                return Ok(Err(format!("option endpoint: {refused}")));
            }
        }
        match ObjectStorage::open(location) {
            Ok(storage) => Ok(Ok(SourceFile::Object { storage: Arc::new(storage), key })),
            Err(error) => Ok(Err(problem(error))),
        }
    }

    // A `file://` source's resolved path; the inner error is a field problem.
    fn allowed_file(&self, field: &str, source: &url::Url) -> Result<Result<PathBuf, String>, Error> {
        let Ok(path) = source.to_file_path() else { return Ok(Err("is not a local file path".to_owned())) };
        match std::fs::canonicalize(&path) {
            Ok(resolved) if self.under_a_root(&resolved) => Ok(Ok(resolved)),
            Ok(_) => Err(Error::PermissionDenied {
                reason: reason::URL_NOT_ALLOWED,
                message: format!(
                    "{field}: {} is not under an allowed file root (see --file-root)",
                    path.display()
                ),
            }),
            Err(error) => Ok(Err(format!("cannot read {}: {error}", path.display()))),
        }
    }

    // An http(s) source the URL policy allows; the inner error is a field problem. IP
    // literals and ports are checked here, and names resolved once for an early answer;
    // the client checks again when it connects, which is what holds against DNS changes.
    pub(super) async fn allowed_url(
        &self,
        field: &str,
        source: &url::Url,
    ) -> Result<Result<ConnectionUri, String>, Error> {
        let policy = self.http.policy();
        let not_allowed = |refused: net::Error| Error::PermissionDenied {
            reason: reason::URL_NOT_ALLOWED,
            message: format!("{field}: {refused}"),
        };
        match policy.check_url(source) {
            Ok(Reach::Anywhere) => {}
            Ok(Reach::PublicOnly) => {
                if let Some(url::Host::Domain(name)) = source.host() {
                    let lookup = tokio::net::lookup_host((name, 0));
                    if let Ok(Ok(addresses)) = tokio::time::timeout(EARLY_LOOKUP_TIMEOUT, lookup).await {
                        let addresses: Vec<SocketAddr> = addresses.collect();
                        policy.check_resolved(name, &addresses).map_err(not_allowed)?;
                    }
                }
            }
            Err(refused @ net::Error::NotAllowed { .. }) => return Err(not_allowed(refused)),
            Err(net::Error::Invalid { problem, .. }) => return Ok(Err(problem)),
        }
        Ok(ConnectionUri::parse(source.as_str()))
    }

    // An ftp source whose host and port the URL policy allows (judged as the policy
    // judges an http URL to the same host and port); the inner error is a field problem.
    async fn allowed_ftp_url(
        &self,
        field: &str,
        source: &url::Url,
    ) -> Result<Result<ConnectionUri, String>, Error> {
        let Some(host) = source.host() else { return Ok(Err("an ftp URL needs a host".to_owned())) };
        if source.path().ends_with('/') {
            return Ok(Err("an ftp URL must name a file".to_owned()));
        }
        let port = source.port().unwrap_or(21);
        let Ok(probe) = url::Url::parse(&format!("http://{host}:{port}/")) else {
            return Ok(Err("the host is not valid".to_owned()));
        };
        if let Err(problem) = self.allowed_url(field, &probe).await? {
            return Ok(Err(problem));
        }
        Ok(ConnectionUri::parse(source.as_str()))
    }

    /// What import jobs work with: the spool directory, the HTTP client, the engines'
    /// settings and the age identities (an encrypted backup's object imports too).
    pub(super) fn import_places(&self) -> ImportPlaces {
        ImportPlaces {
            spool_dir: self.places.spool_dir.clone(),
            http: self.http.clone(),
            engines: self.engines.clone(),
            identities: self.identities.clone(),
        }
    }

    pub(super) fn under_a_root(&self, path: &Path) -> bool {
        self.places
            .file_roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| path.starts_with(root))
    }
}
