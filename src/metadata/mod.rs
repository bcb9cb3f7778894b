//! The catalog: databases, destinations, backups and operations, behind one trait.
//!
//! [`Store`] is object-safe so the backend is chosen at run time: SQLite (the default,
//! one node) now, PostgreSQL (several nodes sharing work) later. Every implementation
//! must pass the shared suite in `suite.rs`.
//!
//! Contract shared by all methods: `get_*`, `update_*` and `delete_*` of an unknown id
//! return [`Error::NotFound`]; names of databases and destinations are unique
//! ([`Error::AlreadyExists`]); writes are atomic (a crash leaves either the old or the new
//! row, never a mix); every future is cancel-safe in that dropping it mid-way leaves the
//! catalog as before the call or as after it.

pub mod key;
pub mod seal;
mod sqlite;
#[cfg(test)]
mod suite;

use async_trait::async_trait;

pub use key::{CatalogKey, KeySource};
pub use sqlite::SqliteStore;

use crate::domain::list::{ListQuery, Page};
use crate::domain::{
    Backup, BackupId, Database, DatabaseId, Destination, DestinationId, Operation, OperationId, OperationKind,
};

/// A catalog failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No resource of this kind has this id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `database`, `destination`, `backup` or `operation`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A unique value is taken (a name, or a request id of another create).
    #[error("{kind} with {field} '{value}' already exists")]
    AlreadyExists {
        /// The resource kind.
        kind: &'static str,
        /// The unique field.
        field: &'static str,
        /// The value that clashed.
        value: String,
    },
    /// The backend failed (I/O, corruption, a bug); the message has no secrets.
    #[error("catalog backend failed: {0}")]
    Backend(String),
}

/// What a create with a request id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The resource was inserted.
    New,
    /// A resource was already created with this request id; this is its id.
    Existing(String),
}

/// The catalog.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a database. With a `request_id` already used by an earlier
    /// `create_database`, inserts nothing and returns that database's id.
    async fn create_database(&self, database: &Database, request_id: Option<&str>) -> Result<Created, Error>;
    /// Reads a database.
    async fn get_database(&self, id: DatabaseId) -> Result<Database, Error>;
    /// Lists databases matching the query.
    async fn list_databases(&self, query: &ListQuery) -> Result<Page<Database>, Error>;
    /// Replaces a database's row.
    async fn update_database(&self, database: &Database) -> Result<(), Error>;
    /// Removes a database (its backups stay in the catalog).
    async fn delete_database(&self, id: DatabaseId) -> Result<(), Error>;

    /// Inserts a destination; `request_id` as for `create_database`.
    async fn create_destination(
        &self,
        destination: &Destination,
        request_id: Option<&str>,
    ) -> Result<Created, Error>;
    /// Reads a destination.
    async fn get_destination(&self, id: DestinationId) -> Result<Destination, Error>;
    /// Reads a destination by its unique name; `None` when there is none.
    async fn find_destination_by_name(&self, name: &str) -> Result<Option<Destination>, Error>;
    /// Lists destinations matching the query.
    async fn list_destinations(&self, query: &ListQuery) -> Result<Page<Destination>, Error>;
    /// Replaces a destination's row.
    async fn update_destination(&self, destination: &Destination) -> Result<(), Error>;
    /// Removes a destination.
    async fn delete_destination(&self, id: DestinationId) -> Result<(), Error>;
    /// Whether any database policy or backup refers to the destination.
    async fn destination_in_use(&self, id: DestinationId) -> Result<bool, Error>;

    /// Inserts a backup.
    async fn create_backup(&self, backup: &Backup) -> Result<(), Error>;
    /// Reads a backup.
    async fn get_backup(&self, id: BackupId) -> Result<Backup, Error>;
    /// Lists backups matching the query.
    async fn list_backups(&self, query: &ListQuery) -> Result<Page<Backup>, Error>;
    /// Replaces a backup's row.
    async fn update_backup(&self, backup: &Backup) -> Result<(), Error>;
    /// Removes a backup's row.
    async fn delete_backup(&self, id: BackupId) -> Result<(), Error>;

    /// Inserts an operation and, in the same transaction, the backup it creates. When
    /// `operation.request_id` was already used by an operation of the same kind, inserts
    /// nothing and returns [`Error::AlreadyExists`] with field `request_id`.
    async fn create_operation(&self, operation: &Operation, backup: Option<&Backup>) -> Result<(), Error>;
    /// Reads an operation.
    async fn get_operation(&self, id: OperationId) -> Result<Operation, Error>;
    /// The operation of `kind` created with `request_id`, if any.
    async fn find_operation_by_request_id(
        &self,
        kind: OperationKind,
        request_id: &str,
    ) -> Result<Option<Operation>, Error>;
    /// Lists operations matching the query.
    async fn list_operations(&self, query: &ListQuery) -> Result<Page<Operation>, Error>;
    /// Replaces an operation's row.
    async fn update_operation(&self, operation: &Operation) -> Result<(), Error>;
    /// Removes an operation's row.
    async fn delete_operation(&self, id: OperationId) -> Result<(), Error>;
}
