//! The JSON body of a notification: what ended, on which database, how, and when. It is
//! built from the operation and the database's name only, so it never holds a secret or
//! a connection URI.

use serde::Serialize;

use crate::domain::{Database, Operation, Timestamp};

/// The event type of a notification about an operation that ended.
pub const OPERATION_COMPLETED: &str = "operation.completed";

/// One notification's body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The delivery id, also sent as `Cellar-Delivery`: the same on every attempt.
    pub id: String,
    /// The event type (`operation.completed`).
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// When the notification was made.
    pub create_time: Timestamp,
    /// The operation that ended.
    pub operation: OperationSummary,
}

/// The operation that ended, with the API's names for its kind and state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationSummary {
    /// `operations/<id>`, as the OperationService names it.
    pub name: String,
    /// The OperationKind value name (`OPERATION_KIND_BACKUP`).
    pub kind: String,
    /// The OperationState value name (`OPERATION_STATE_SUCCEEDED`).
    pub state: String,
    /// The database it worked on.
    pub database_id: String,
    /// That database's name.
    pub database_name: String,
    /// The backup it created, read or deleted, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// When it was submitted.
    pub create_time: Timestamp,
    /// When it started running; absent for one that ended while queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// Why it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorSummary>,
}

/// Why an operation failed, as in `Operation.error`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorSummary {
    /// The google.rpc.Code number.
    pub code: i32,
    /// The stable reason (`SOURCE_UNREACHABLE`, `INTERRUPTED`, ...).
    pub reason: String,
    /// What failed, in words (built redacted, like every failure message).
    pub message: String,
}

impl Event {
    /// The notification that `operation`, on `database`, ended; with a fresh delivery id.
    pub fn operation_completed(operation: &Operation, database: &Database) -> Event {
        let error = operation.error.as_ref().map(|failure| ErrorSummary {
            code: failure.code as i32,
            reason: failure.reason.clone(),
            message: failure.message.clone(),
        });
        let summary = OperationSummary {
            name: operation.id.resource_name(),
            kind: format!("OPERATION_KIND_{}", operation.kind.as_str().to_ascii_uppercase()),
            state: format!("OPERATION_STATE_{}", operation.state.as_str().to_ascii_uppercase()),
            database_id: database.id.to_string(),
            database_name: database.name.to_string(),
            backup_id: operation.backup_id.map(|id| id.to_string()),
            create_time: operation.create_time,
            start_time: operation.start_time,
            end_time: operation.end_time,
            error,
        };
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: OPERATION_COMPLETED,
            create_time: crate::domain::now(),
            operation: summary,
        }
    }

    /// The body as sent.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and timestamps only: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}
