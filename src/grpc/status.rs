//! The one place where refusals become `tonic::Status`, with rich details: `ErrorInfo`
//! (stable reason), `BadRequest` (field violations) and `RetryInfo` (when busy).

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{Invalid, reason};
use crate::service::Error;

/// The `ErrorInfo.domain` of every error this server returns.
const ERROR_DOMAIN: &str = "cellar.v1";

/// How long a client should wait before retrying a busy database.
const BUSY_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Converts a core refusal into a gRPC status.
pub(crate) fn to_status(error: Error) -> Status {
    match error {
        Error::Invalid(invalid) => invalid_argument(&invalid),
        Error::NotFound { kind, ref id } => {
            let metadata =
                HashMap::from([("resource".to_owned(), kind.to_owned()), ("id".to_owned(), id.clone())]);
            with_reason(Code::NotFound, error.to_string(), "NOT_FOUND", metadata)
        }
        Error::AlreadyExists { kind, field, .. } => {
            let metadata = HashMap::from([
                ("resource".to_owned(), kind.to_owned()),
                ("field".to_owned(), field.to_owned()),
            ]);
            with_reason(Code::AlreadyExists, error.to_string(), "ALREADY_EXISTS", metadata)
        }
        Error::FailedPrecondition { reason, ref message } => {
            with_reason(Code::FailedPrecondition, message.clone(), reason, HashMap::new())
        }
        Error::DatabaseBusy { database_id, operation_id } => {
            let mut details = ErrorDetails::with_error_info(
                reason::DATABASE_BUSY,
                ERROR_DOMAIN,
                HashMap::from([
                    ("database_id".to_owned(), database_id.to_string()),
                    ("operation".to_owned(), operation_id.resource_name()),
                ]),
            );
            details.set_retry_info(Some(BUSY_RETRY_DELAY));
            Status::with_error_details(Code::Aborted, error.to_string(), details)
        }
        Error::PermissionDenied { reason, message } => {
            with_reason(Code::PermissionDenied, message, reason, HashMap::new())
        }
        Error::OutOfRange(message) => with_reason(Code::OutOfRange, message, "OUT_OF_RANGE", HashMap::new()),
        Error::DataLoss(message) => {
            tracing::error!(error = %message, "a stored backup is damaged");
            with_reason(Code::DataLoss, message, reason::BACKUP_OBJECT_DAMAGED, HashMap::new())
        }
        Error::StorageUnavailable { reason, message } => {
            with_reason(Code::Unavailable, message, reason, HashMap::new())
        }
        Error::Unimplemented(message) => {
            with_reason(Code::Unimplemented, message, "NOT_IMPLEMENTED", HashMap::new())
        }
        Error::Unavailable => {
            with_reason(Code::Unavailable, error.to_string(), reason::SHUTTING_DOWN, HashMap::new())
        }
        Error::Internal(message) => {
            tracing::error!(error = %message, "internal error");
            with_reason(
                Code::Internal,
                "internal error; see the server log".to_owned(),
                reason::INTERNAL,
                HashMap::new(),
            )
        }
    }
}

/// INVALID_ARGUMENT with one `BadRequest` field violation per problem.
pub(crate) fn invalid_argument(invalid: &Invalid) -> Status {
    let mut details = ErrorDetails::with_error_info("INVALID_ARGUMENT", ERROR_DOMAIN, HashMap::new());
    for violation in &invalid.violations {
        details.add_bad_request_violation(&violation.field, &violation.description);
    }
    Status::with_error_details(Code::InvalidArgument, invalid.to_string(), details)
}

/// PERMISSION_DENIED naming the permission the caller lacks (reason
/// `PERMISSION_DENIED`, metadata `permission`).
pub(crate) fn permission_denied(permission: &str, why: &str) -> Status {
    let metadata = HashMap::from([("permission".to_owned(), permission.to_owned())]);
    with_reason(
        Code::PermissionDenied,
        format!("permission {permission} denied: {why}"),
        "PERMISSION_DENIED",
        metadata,
    )
}

/// UNAUTHENTICATED, saying why (never quoting the token).
pub(crate) fn unauthenticated(error: &crate::auth::Error) -> Status {
    with_reason(Code::Unauthenticated, error.to_string(), "UNAUTHENTICATED", HashMap::new())
}

fn with_reason(code: Code, message: String, reason: &str, metadata: HashMap<String, String>) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DatabaseId, OperationId};

    #[test]
    fn busy_carries_reason_and_retry_delay() {
        let status = to_status(Error::DatabaseBusy {
            database_id: DatabaseId::new(),
            operation_id: OperationId::new(),
        });
        assert_eq!(status.code(), Code::Aborted);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "DATABASE_BUSY");
        assert_eq!(details.retry_info().unwrap().retry_delay, Some(BUSY_RETRY_DELAY));
    }

    #[test]
    fn invalid_lists_every_field() {
        let mut invalid = Invalid::field("database.name", "is required");
        invalid.add("database.engine", "is required");
        let status = invalid_argument(&invalid);
        assert_eq!(status.code(), Code::InvalidArgument);
        let violations = status.get_error_details().bad_request().unwrap().field_violations.clone();
        let fields: Vec<_> = violations.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["database.name", "database.engine"]);
    }
}
