//! `Operation` messages.

use super::*;
use crate::domain::{Failure, Operation, OperationKind, OperationResult, OperationState, Progress};

pub(crate) fn operation_to_pb(operation: &Operation) -> pb::Operation {
    let result = match (&operation.error, &operation.result) {
        (Some(error), _) => Some(pb::operation::Result::Error(status_to_pb(error))),
        (None, Some(result)) => Some(pb::operation::Result::Response(response_to_pb(
            result,
            operation.progress.items_unit.as_str(),
        ))),
        (None, None) => None,
    };
    pb::Operation {
        name: operation.id.resource_name(),
        metadata: Some(pb::OperationMetadata {
            kind: kind_to_pb(operation.kind) as i32,
            state: state_to_pb(operation.state) as i32,
            phase: operation.phase.clone(),
            database_id: operation.database_id.map(|id| id.to_string()).unwrap_or_default(),
            backup_id: operation.backup_id.map(|id| id.to_string()).unwrap_or_default(),
            progress: Some(progress_to_pb(&operation.progress, operation.kind)),
            queue_position: operation.queue_position as i32,
            create_time: Some(timestamp_to_pb(operation.create_time)),
            start_time: optional_timestamp_to_pb(operation.start_time),
            update_time: Some(timestamp_to_pb(operation.update_time)),
            end_time: optional_timestamp_to_pb(operation.end_time),
            cancel_time: optional_timestamp_to_pb(operation.cancel_time),
            warnings: operation.warnings.iter().map(status_to_pb).collect(),
            request_id: operation.request_id.clone().unwrap_or_default(),
        }),
        done: operation.is_done(),
        result,
    }
}

fn progress_to_pb(progress: &Progress, kind: OperationKind) -> pb::Progress {
    let items_unit = match kind {
        OperationKind::DeleteBackup => "",
        _ if progress.items_total == 0 && progress.items_done == 0 => "",
        _ => progress.items_unit.as_str(),
    };
    pb::Progress {
        bytes_done: progress.bytes_done as i64,
        bytes_total: progress.bytes_total as i64,
        items_done: progress.items_done as i64,
        items_total: progress.items_total as i64,
        percent: progress.percent(),
        bytes_per_second: progress.bytes_per_second as i64,
        eta: progress.eta().map(duration_to_pb),
        items_unit: items_unit.to_owned(),
    }
}

pub(crate) fn status_to_pb(failure: &Failure) -> pb::Status {
    pb::Status {
        code: failure.code as i32,
        message: failure.message.clone(),
        reason: failure.reason.clone(),
        metadata: failure.metadata.iter().map(|(key, value)| (key.clone(), value.clone())).collect(),
    }
}

// `items_unit` is what the job counted in its progress (`keys`, `tables`).
fn response_to_pb(result: &OperationResult, items_unit: &str) -> pb::OperationResponse {
    use pb::operation_response::Result as Response;
    let response = match result {
        OperationResult::Backup(backup) => Response::Backup(super::backup_to_pb(backup)),
        OperationResult::Restore(restore) => Response::Restore(pb::RestoreResult {
            backup_id: restore.backup_id.map(|id| id.to_string()).unwrap_or_default(),
            database_id: restore.database_id.map(|id| id.to_string()).unwrap_or_default(),
            database_name: restore.database_name.clone(),
            bytes_read: restore.bytes as i64,
            items_loaded: restore.items as i64,
            items_unit: items_unit.to_owned(),
            load_method: restore.load_method.clone(),
            ..Default::default()
        }),
        OperationResult::Import(import) => Response::ImportResult(pb::ImportResult {
            database_id: import.database_id.map(|id| id.to_string()).unwrap_or_default(),
            backup_id: import.backup_id.map(|id| id.to_string()).unwrap_or_default(),
            source_uris: import.source_uris.clone(),
            bytes_read: import.bytes as i64,
            items_loaded: import.items as i64,
            items_unit: items_unit.to_owned(),
            load_method: import.load_method.clone(),
            database_names: import.database_names.clone(),
            logical_bytes: import.logical_bytes as i64,
            engine: import.backup.as_ref().map_or(0, |backup| super::engine_to_pb(backup.engine)),
            format: import.backup.as_ref().map(|backup| backup.format.clone()).unwrap_or_default(),
            backup: import.backup.as_deref().map(super::backup_to_pb),
        }),
        OperationResult::Export(export) => Response::ExportResult(pb::ExportResult {
            database_id: export.database_id.map(|id| id.to_string()).unwrap_or_default(),
            export_uri: export.export_uri.clone(),
            size_bytes: export.size_bytes as i64,
            logical_size_bytes: export.logical_size_bytes as i64,
            sha256: export.sha256.clone(),
            database_name: export.database_name.clone(),
            compression: export
                .compression
                .map_or(pb::Compression::Unspecified as i32, super::compression_to_pb),
            format: export.format.clone(),
            items_exported: export.items as i64,
            items_unit: items_unit.to_owned(),
            server_version: export.server_version.clone(),
        }),
    };
    pb::OperationResponse { result: Some(response) }
}

fn kind_to_pb(kind: OperationKind) -> pb::OperationKind {
    match kind {
        OperationKind::Backup => pb::OperationKind::Backup,
        OperationKind::Restore => pb::OperationKind::Restore,
        OperationKind::ImportDatabase => pb::OperationKind::ImportDatabase,
        OperationKind::ImportBackup => pb::OperationKind::ImportBackup,
        OperationKind::ExportDatabase => pb::OperationKind::ExportDatabase,
        OperationKind::DeleteBackup => pb::OperationKind::DeleteBackup,
    }
}

fn state_to_pb(state: OperationState) -> pb::OperationState {
    match state {
        OperationState::Queued => pb::OperationState::Queued,
        OperationState::Running => pb::OperationState::Running,
        OperationState::Cancelling => pb::OperationState::Cancelling,
        OperationState::Succeeded => pb::OperationState::Succeeded,
        OperationState::Failed => pb::OperationState::Failed,
        OperationState::Cancelled => pb::OperationState::Cancelled,
    }
}
