//! The core behind every transport: catalog rules, defaults, and job submission.
//!
//! gRPC handlers (and later the CLI and the scheduler) convert their input into the
//! validated values of `domain` and the request types here, call [`Cellar`], and convert
//! the result back. Nothing here knows about protobuf.

mod backups;
mod databases;
mod destinations;
mod error;
mod imports;
mod requests;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::Error;
pub use requests::{
    BackupPatch, CreateBackup, DatabasePatch, DestinationPatch, ImportDatabase, NewDatabase, NewDestination,
    PolicyPatch, RestoreBackup,
};

use crate::domain::EngineKind;
use crate::engine;
use crate::metadata::Store;
use crate::operations::Manager;

/// The service core: the catalog plus the operations manager.
#[derive(Clone)]
pub struct Cellar {
    store: Arc<dyn Store>,
    manager: Manager,
    places: Places,
    engines: engine::Settings,
}

/// The local directories the core works with.
#[derive(Debug, Clone)]
pub struct Places {
    /// Where the built-in `local` destination points.
    pub backups_dir: PathBuf,
    /// Where restores and imports stage data.
    pub spool_dir: PathBuf,
    /// Directories `file://` import sources may be under.
    pub file_roots: Vec<PathBuf>,
}

impl Cellar {
    /// The core over a catalog, a manager and its local directories.
    pub fn new(store: Arc<dyn Store>, manager: Manager, places: Places) -> Self {
        Cellar { store, manager, places, engines: engine::Settings::default() }
    }

    /// The same core with these engine settings.
    pub fn with_engine_settings(self, engines: engine::Settings) -> Self {
        Cellar { engines, ..self }
    }

    /// The engine for `kind`, with the server's settings; UNIMPLEMENTED for engines not
    /// supported yet.
    fn engine(&self, kind: EngineKind) -> Result<Arc<dyn engine::Engine>, Error> {
        engine::for_kind(kind, self.engines).map_err(|error| Error::Unimplemented(error.to_string()))
    }

    /// The operations manager (operations RPCs go straight to it).
    pub fn operations(&self) -> &Manager {
        &self.manager
    }
}
