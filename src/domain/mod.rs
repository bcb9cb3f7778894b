//! The domain vocabulary: ids, enums, resources and validated values.
//!
//! Nothing here knows about protobuf, SQL or storage backends; values built through the
//! constructors in this module are valid by construction, so the core never re-checks them.

mod backup;
mod database;
mod destination;
mod encryption;
mod enums;
mod failure;
mod ids;
pub mod list;
mod operation;
mod secret;
mod validate;
mod webhook;

pub use backup::{Backup, BackupName, BackupPart};
pub use database::{BackupPolicy, DEFAULT_PROJECT, Database, ResourceName, RetentionPolicy};
pub use destination::{DESTINATION_SCHEMES, Destination, LOCAL_DESTINATION, check_destination_uri};
pub use encryption::AgeRecipient;
pub use enums::{BackupOrigin, BackupState, Compression, EngineKind, OperationKind, OperationState};
pub use failure::{Code, Failure, reason};
pub use ids::{BackupId, DatabaseId, DestinationId, OperationId};
pub use operation::{
    ExportResult, ImportResult, ItemsUnit, Operation, OperationResult, Progress, RestoreResult,
};
pub use secret::{ConnectionUri, Secret, redact_uri};
pub use validate::{FieldViolation, Invalid};
pub use webhook::{MAX_SECRET_CHARS, MIN_SECRET_CHARS, Webhook, shown_url};

/// Timestamps everywhere in the domain: UTC with sub-second precision.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// Labels attached to resources (free-form key/value pairs, like Kubernetes labels).
pub type Labels = std::collections::BTreeMap<String, String>;

/// The current time, truncated to microseconds so that it survives a round trip through
/// the catalog unchanged.
pub fn now() -> Timestamp {
    let now = chrono::Utc::now();
    chrono::DurationRound::duration_trunc(now, chrono::Duration::microseconds(1)).unwrap_or(now)
}
