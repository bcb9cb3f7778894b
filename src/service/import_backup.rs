//! Bringing a backup into the catalog from outside (ImportBackup, Northflank's "import
//! addon backup"): from a live database that is not registered, or from an archive at
//! a location. No registered database is touched, nor held busy: the one the backup is
//! filed under only lends its id, name and project.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{BackupImportSource, Cellar, Error, ImportBackup};
use crate::domain::{
    Backup, BackupId, BackupName, BackupOrigin, BackupState, ConnectionUri, DEFAULT_PROJECT, Database,
    EngineKind, Invalid, Operation, OperationKind, Secret,
};
use crate::jobs::{BackupJob, BackupSource, ImportArchiveJob, SourceFile};
use crate::operations::{Job, Submission};

/// The credential keys an http(s) or ftp archive takes (into its URL's user info).
const URL_CREDENTIALS: [&str; 2] = ["username", "password"];

impl Cellar {
    /// Starts bringing a backup into the catalog; returns the operation. The backup
    /// appears READY only once its data is stored whole and checked.
    pub async fn import_backup(&self, request: ImportBackup) -> Result<Operation, Error> {
        if let Some(existing) =
            self.existing_operation(OperationKind::ImportBackup, &request.request_id).await?
        {
            return Ok(existing);
        }
        let filed = match request.database_id {
            Some(id) => Some(self.store.get_database(id).await?),
            None => None,
        };
        let claimed = claimed_engine(request.engine, filed.as_ref())?;
        let destination = self.resolve_destination(request.destination_id).await?;
        let storage = self.open_storage(&destination)?;
        let now = crate::domain::now();
        let mut backup = Backup {
            id: BackupId::new(),
            name: request.name.clone().unwrap_or_else(|| BackupName::from_time(now)),
            database_id: filed.as_ref().map(|database| database.id),
            instance_name: filed.as_ref().map(|database| database.name.to_string()).unwrap_or_default(),
            database_name: String::new(),
            project_id: filed
                .as_ref()
                .map_or_else(|| DEFAULT_PROJECT.to_owned(), |database| database.project_id.clone()),
            engine: claimed.unwrap_or(EngineKind::Redis),
            server_version: String::new(),
            state: BackupState::Creating,
            size_bytes: 0,
            logical_size_bytes: 0,
            sha256: String::new(),
            compression: request.compression,
            format: String::new(),
            destination_id: destination.id,
            object_key: String::new(),
            uri: String::new(),
            origin: BackupOrigin::Imported,
            create_time: now,
            update_time: now,
            expire_time: request.expire_time,
            labels: request.labels.clone(),
            parts: Vec::new(),
            // Filed under a database, it is encrypted as that database's backups are.
            age_recipients: filed
                .as_ref()
                .map(|database| database.backup_policy.age_recipients.clone())
                .unwrap_or_default(),
        };
        let (job, insert_backup): (Arc<dyn Job>, bool) = match &request.source {
            BackupImportSource::Live(uri) => {
                let engine = live_engine(uri, claimed, request.import_all_databases)?;
                backup.engine = engine;
                backup.format = super::backups::format_of(engine).to_owned();
                let source = BackupSource {
                    engine,
                    uri: uri.clone(),
                    shown: uri.redacted(),
                    every_database: request.import_all_databases,
                    imported: true,
                };
                let snapshotter = self.engine(engine)?;
                (
                    Arc::new(BackupJob::new(
                        self.store.clone(),
                        snapshotter,
                        storage,
                        source,
                        backup.clone(),
                    )),
                    true,
                )
            }
            BackupImportSource::Archive { url, credentials } => {
                if request.import_all_databases {
                    return Err(Invalid::field(
                        "import_all_databases",
                        "applies to a live source (connection_uri): an archive is stored as it is",
                    )
                    .into());
                }
                let source = self.archive_source(url, credentials).await?;
                let places = self.import_places();
                let job = ImportArchiveJob::new(
                    self.store.clone(),
                    storage,
                    source,
                    claimed,
                    backup.clone(),
                    places,
                );
                (Arc::new(job), false)
            }
        };
        let submission = Submission {
            kind: OperationKind::ImportBackup,
            database_id: backup.database_id,
            backup: Some(backup),
            insert_backup,
            request_id: request.request_id,
            job,
        };
        Ok(self.manager.submit(submission).await?)
    }

    // Checks an archive's location like an import source, its credentials going to
    // the object store, or into an http(s) or ftp URL's user info.
    async fn archive_source(
        &self,
        url: &ConnectionUri,
        credentials: &BTreeMap<String, Secret>,
    ) -> Result<SourceFile, Error> {
        let mut url = url.expose().clone();
        match url.scheme() {
            "s3" | "gs" | "abs" | "az" => {}
            "http" | "https" | "ftp" => {
                if let Some(key) = credentials.keys().find(|key| !URL_CREDENTIALS.contains(&key.as_str())) {
                    return Err(Invalid::field(
                        "credentials",
                        format!(
                            "'{key}' is not a credential of {} URLs: use username and password",
                            url.scheme()
                        ),
                    )
                    .into());
                }
                let credential = |name: &str| credentials.get(name).map(Secret::expose);
                let unset = |_| Error::from(Invalid::field("import_url", "cannot carry credentials"));
                if let Some(user) = credential("username") {
                    url.set_username(user).map_err(unset)?;
                }
                if let Some(password) = credential("password") {
                    url.set_password(Some(password)).map_err(unset)?;
                }
            }
            _ if !credentials.is_empty() => {
                return Err(Invalid::field("credentials", format!("{} URLs take none", url.scheme())).into());
            }
            _ => {}
        }
        match self.import_source("import_url", &url, credentials).await? {
            Ok(source) => Ok(source),
            Err(problem) => Err(Invalid::field("import_url", problem).into()),
        }
    }
}

// The engine the request claims: `engine`, else the engine of the database the backup
// is filed under; both given must agree.
fn claimed_engine(engine: Option<EngineKind>, filed: Option<&Database>) -> Result<Option<EngineKind>, Error> {
    match (engine, filed) {
        (Some(engine), Some(database)) if engine != database.engine => Err(Invalid::field(
            "engine",
            format!("is {engine}, but database {} is a {} database", database.name, database.engine),
        )
        .into()),
        (Some(engine), _) => Ok(Some(engine)),
        (None, filed) => Ok(filed.map(|database| database.engine)),
    }
}

// The engine of a live source, by its scheme; it must agree with the claimed one. A
// PostgreSQL or MySQL source names the database to copy, unless all are asked for.
fn live_engine(
    uri: &ConnectionUri,
    claimed: Option<EngineKind>,
    import_all_databases: bool,
) -> Result<EngineKind, Error> {
    let field = "connection_uri";
    let engine = [EngineKind::Redis, EngineKind::Postgres, EngineKind::Mysql]
        .into_iter()
        .find(|engine| engine.uri_schemes().contains(&uri.scheme()))
        .ok_or_else(|| {
            Invalid::field(field, format!("scheme '{}' is not a database's: use redis://, rediss://, postgres://, postgresql://, mysql:// or mariadb://", uri.scheme()))
        })?;
    if let Some(claimed) = claimed.filter(|claimed| *claimed != engine) {
        return Err(
            Invalid::field(field, format!("is a {engine} server, but the backup is for {claimed}")).into()
        );
    }
    let names_database = !uri.expose().path().trim_start_matches('/').is_empty();
    if engine != EngineKind::Redis && !names_database && !import_all_databases {
        return Err(Invalid::field(
            field,
            "names no database: give one in the URI's path, or set import_all_databases to copy them all",
        )
        .into());
    }
    Ok(engine)
}
