//! The core behind every transport: catalog rules, defaults, and job submission.
//!
//! gRPC handlers (and later the CLI and the scheduler) convert their input into the
//! validated values of `domain` and the request types here, call [`Cellar`], and convert
//! the result back. Nothing here knows about protobuf.

mod backups;
mod databases;
mod destinations;
mod error;
mod requests;

use std::path::PathBuf;
use std::sync::Arc;

pub use error::Error;
pub use requests::{
    BackupPatch, CreateBackup, DatabasePatch, DestinationPatch, NewDatabase, NewDestination, PolicyPatch,
    RestoreBackup,
};

use crate::metadata::Store;
use crate::operations::Manager;

/// The service core: the catalog plus the operations manager.
#[derive(Clone)]
pub struct Cellar {
    store: Arc<dyn Store>,
    manager: Manager,
    backups_dir: PathBuf,
    spool_dir: PathBuf,
}

impl Cellar {
    /// The core over a catalog and a manager; `backups_dir` is where the built-in
    /// `local` destination points, `spool_dir` where restores stage data.
    pub fn new(store: Arc<dyn Store>, manager: Manager, backups_dir: PathBuf, spool_dir: PathBuf) -> Self {
        Cellar { store, manager, backups_dir, spool_dir }
    }

    /// The operations manager (operations RPCs go straight to it).
    pub fn operations(&self) -> &Manager {
        &self.manager
    }
}
