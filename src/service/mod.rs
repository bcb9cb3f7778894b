//! The core behind every transport: catalog rules, defaults, and job submission.
//!
//! gRPC handlers (and later the CLI and the scheduler) convert their input into the
//! validated values of `domain` and the request types here, call [`Cellar`], and convert
//! the result back. Nothing here knows about protobuf.

mod backups;
mod databases;
mod destinations;
mod error;
mod export_database;
mod exports;
mod import_backup;
mod imports;
mod requests;
mod schedules;
mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::Error;
pub use exports::{BackupDownload, ExportedBackup, LinkedObject};
pub use requests::{
    BackupImportSource, BackupPatch, CreateBackup, DatabasePatch, DestinationPatch, DownloadBackup,
    ExportBackup, ExportDatabase, ImportBackup, ImportDatabase, NewDatabase, NewDestination, PolicyPatch,
    RestoreBackup, WebhookPatch,
};

use crate::domain::EngineKind;
use crate::engine;
use crate::metadata::Store;
use crate::net::{AllowedHost, UrlPolicy};
use crate::operations::Manager;
use crate::storage::http::HttpClient;

/// The service core: the catalog plus the operations manager.
#[derive(Clone)]
pub struct Cellar {
    store: Arc<dyn Store>,
    manager: Manager,
    places: Places,
    http: Arc<HttpClient>,
    engines: engine::Settings,
    /// Signalled when a database's policy may have changed; the scheduler waits on it.
    schedules: Arc<tokio::sync::Notify>,
    /// The download listener's links; `None` when the listener is off.
    links: Option<Arc<crate::download::Links>>,
    /// The age identities that decrypt encrypted backups for restores.
    identities: Arc<crate::pipeline::identities::Identities>,
}

/// The local places the core works with, and what imports may reach.
#[derive(Debug, Clone)]
pub struct Places {
    /// Where the built-in `local` destination points.
    pub backups_dir: PathBuf,
    /// Where restores and imports stage data.
    pub spool_dir: PathBuf,
    /// Directories `file://` import sources may be under.
    pub file_roots: Vec<PathBuf>,
    /// Hosts http(s) import sources may reach even at internal addresses.
    pub allow_hosts: Vec<AllowedHost>,
    /// Where loads record what they borrow from their targets (`<data dir>/journal`).
    pub journal: engine::journal::Journal,
}

impl Cellar {
    /// The core over a catalog, a manager and its places; fails only when the HTTP
    /// client for http(s) imports cannot start.
    pub fn new(
        store: Arc<dyn Store>,
        manager: Manager,
        places: Places,
    ) -> Result<Self, crate::storage::Error> {
        let http = Arc::new(HttpClient::new(UrlPolicy::new(places.allow_hosts.clone()))?);
        Ok(Cellar {
            store,
            manager,
            places,
            http,
            engines: engine::Settings::default(),
            schedules: Arc::new(tokio::sync::Notify::new()),
            links: None,
            identities: Arc::default(),
        })
    }

    /// The same core with these engine settings.
    pub fn with_engine_settings(self, engines: engine::Settings) -> Self {
        Cellar { engines, ..self }
    }

    /// The same core handing out links of the download listener, for stores that
    /// cannot presign URLs.
    pub fn with_download_links(self, links: crate::download::Links) -> Self {
        Cellar { links: Some(Arc::new(links)), ..self }
    }

    /// The same core decrypting encrypted backups with `identities` for restores.
    pub fn with_age_identities(self, identities: crate::pipeline::identities::Identities) -> Self {
        Cellar { identities: Arc::new(identities), ..self }
    }

    /// The engine for `kind`, with the server's settings; UNIMPLEMENTED for engines not
    /// supported yet.
    fn engine(&self, kind: EngineKind) -> Result<Arc<dyn engine::Engine>, Error> {
        engine::for_kind(kind, &self.engines).map_err(|error| Error::Unimplemented(error.to_string()))
    }

    /// The engine for loads into `target`, recording in the journal what a load borrows
    /// from it; UNIMPLEMENTED for engines not supported yet.
    fn loading_engine(&self, target: &crate::domain::Database) -> Result<Arc<dyn engine::Engine>, Error> {
        let journal = self.places.journal.for_database(target.id);
        engine::for_load(target.engine, &self.engines, journal)
            .map_err(|error| Error::Unimplemented(error.to_string()))
    }

    /// The operations manager (operations RPCs go straight to it).
    pub fn operations(&self) -> &Manager {
        &self.manager
    }
}
