//! What the core answers when it refuses a request.

use crate::domain::{DatabaseId, Invalid, OperationId};
use crate::{metadata, operations};

/// A refused request. Messages name the thing that failed and never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every violation is listed.
    #[error("invalid request: {0}")]
    Invalid(#[from] Invalid),
    /// A resource the request names does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `database`, `destination`, `backup` or `operation`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A unique value is taken.
    #[error("{kind} with {field} '{value}' already exists")]
    AlreadyExists {
        /// The resource kind.
        kind: &'static str,
        /// The unique field.
        field: &'static str,
        /// The value that clashed.
        value: String,
    },
    /// The request is valid but the system is not in a state to do it.
    #[error("{message}")]
    FailedPrecondition {
        /// A stable reason.
        reason: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database already runs a data operation; retry later.
    #[error("database {database_id} is busy with operation {operation_id}")]
    DatabaseBusy {
        /// The busy database.
        database_id: DatabaseId,
        /// The operation holding it.
        operation_id: OperationId,
    },
    /// The request reaches for something this server does not allow.
    #[error("{message}")]
    PermissionDenied {
        /// A stable reason (`URL_NOT_ALLOWED`).
        reason: &'static str,
        /// What was refused.
        message: String,
    },
    /// A position past the end of what the request reads.
    #[error("{0}")]
    OutOfRange(String),
    /// A READY backup's stored object is missing or no longer matches the catalog.
    #[error("{0}")]
    DataLoss(String),
    /// A store the request needs failed or cannot be reached; a retry may work.
    #[error("{message}")]
    StorageUnavailable {
        /// A stable reason (`STORAGE_FAILED`, `STORAGE_DENIED`).
        reason: &'static str,
        /// What failed.
        message: String,
    },
    /// The feature is not available yet.
    #[error("{0}")]
    Unimplemented(String),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Unavailable,
    /// Something broke inside; the log has the details.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<metadata::Error> for Error {
    fn from(error: metadata::Error) -> Self {
        match error {
            metadata::Error::NotFound { kind, id } => Error::NotFound { kind, id },
            metadata::Error::AlreadyExists { kind, field, value } => {
                Error::AlreadyExists { kind, field, value }
            }
            metadata::Error::Backend(message) => Error::Internal(message),
        }
    }
}

impl From<crate::download::chunks::Error> for Error {
    fn from(error: crate::download::chunks::Error) -> Self {
        use crate::download::chunks::Error as Chunks;
        match error {
            Chunks::Read(_) => Error::StorageUnavailable {
                reason: crate::domain::reason::STORAGE_FAILED,
                message: error.to_string(),
            },
            Chunks::Truncated { .. } | Chunks::Checksum { .. } => Error::DataLoss(error.to_string()),
        }
    }
}

impl From<operations::Error> for Error {
    fn from(error: operations::Error) -> Self {
        match error {
            operations::Error::DatabaseBusy { database_id, operation_id } => {
                Error::DatabaseBusy { database_id, operation_id }
            }
            operations::Error::NotDone(id) => Error::FailedPrecondition {
                reason: "OPERATION_NOT_DONE",
                message: format!("operation {} is not done; cancel it or wait for it", id.resource_name()),
            },
            operations::Error::ShuttingDown => Error::Unavailable,
            operations::Error::Metadata(error) => error.into(),
        }
    }
}
