//! `Backup` messages and the backup requests.

use super::*;
use crate::domain::{Backup, BackupId, BackupName, BackupOrigin, BackupState, DatabaseId, DestinationId};
use crate::service::{BackupPatch, CreateBackup, RestoreBackup};

const UPDATABLE: &[&str] = &["name", "expire_time", "labels"];

pub(crate) fn backup_to_pb(backup: &Backup) -> pb::Backup {
    let manifest_uri = match backup.uri.rsplit_once('/') {
        Some((directory, _)) if backup.state == BackupState::Ready => format!("{directory}/manifest.json"),
        _ => String::new(),
    };
    pb::Backup {
        id: backup.id.to_string(),
        name: backup.name.to_string(),
        database_id: backup.database_id.map(|id| id.to_string()).unwrap_or_default(),
        instance_name: backup.instance_name.clone(),
        database_name: backup.database_name.clone(),
        project_id: backup.project_id.clone(),
        engine: engine_to_pb(backup.engine),
        server_version: backup.server_version.clone(),
        state: state_to_pb(backup.state) as i32,
        size_bytes: backup.size_bytes as i64,
        logical_size_bytes: backup.logical_size_bytes as i64,
        sha256: backup.sha256.clone(),
        compression: compression_to_pb(backup.compression),
        format: backup.format.clone(),
        destination_id: backup.destination_id.to_string(),
        uri: backup.uri.clone(),
        origin: origin_to_pb(backup.origin) as i32,
        create_time: Some(timestamp_to_pb(backup.create_time)),
        update_time: Some(timestamp_to_pb(backup.update_time)),
        expire_time: optional_timestamp_to_pb(backup.expire_time),
        labels: labels_to_pb(&backup.labels),
        object_key: backup.object_key.clone(),
        manifest_uri,
        parts: backup.parts.iter().map(part_to_pb).collect(),
        encrypted: backup.encrypted(),
        age_recipients: backup.age_recipients.iter().map(ToString::to_string).collect(),
    }
}

fn part_to_pb(part: &crate::domain::BackupPart) -> pb::BackupPart {
    pb::BackupPart {
        database_name: part.database_name.clone(),
        uri: part.uri.clone(),
        object_key: part.object_key.clone(),
        size_bytes: part.size_bytes as i64,
        logical_size_bytes: part.logical_size_bytes as i64,
        sha256: part.sha256.clone(),
        items: part.items as i64,
    }
}

fn state_to_pb(state: BackupState) -> pb::BackupState {
    match state {
        BackupState::Creating => pb::BackupState::Creating,
        BackupState::Ready => pb::BackupState::Ready,
        BackupState::Failed => pb::BackupState::Failed,
        BackupState::Deleting => pb::BackupState::Deleting,
    }
}

fn origin_to_pb(origin: BackupOrigin) -> pb::BackupOrigin {
    match origin {
        BackupOrigin::OnDemand => pb::BackupOrigin::OnDemand,
        BackupOrigin::Scheduled => pb::BackupOrigin::Scheduled,
        BackupOrigin::Imported => pb::BackupOrigin::Imported,
    }
}

/// A CreateBackup request, validated.
pub(crate) fn create_backup_from_pb(request: pb::CreateBackupRequest) -> Result<CreateBackup, Invalid> {
    let mut invalid = Invalid::default();
    let database_id = parse_id("database_id", &request.database_id, DatabaseId::parse, &mut invalid);
    let name = optional_name(&request.name, &mut invalid);
    let expire_time =
        request.expire_time.as_ref().and_then(|time| timestamp_from_pb("expire_time", time, &mut invalid));
    if expire_time.is_some_and(|time| time <= crate::domain::now()) {
        invalid.add("expire_time", "must be in the future");
    }
    let destination_id =
        parse_optional_id("destination_id", &request.destination_id, DestinationId::parse, &mut invalid);
    let compression = compression_from_pb("compression", request.compression, &mut invalid);
    let labels = labels_from_pb("labels", &request.labels, &mut invalid);
    let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
    let Some(database_id) = database_id else { return Err(invalid) };
    invalid.into_result(|| CreateBackup {
        database_id,
        name,
        database_name: request.database_name.trim().to_owned(),
        expire_time,
        destination_id,
        compression,
        labels,
        request_id,
        origin: BackupOrigin::OnDemand,
    })
}

/// An UpdateBackup request, validated. Only name, expire_time and labels change.
pub(crate) fn backup_patch_from_pb(
    request: pb::UpdateBackupRequest,
) -> Result<(BackupId, BackupPatch), Invalid> {
    let mut invalid = Invalid::default();
    let Some(backup) = request.backup else {
        invalid.add("backup", "is required");
        return Err(invalid);
    };
    let id = parse_id("backup.id", &backup.id, BackupId::parse, &mut invalid);
    let paths = match mask_paths(request.update_mask.as_ref()) {
        Some(paths) if paths.iter().any(|path| path == "*") => {
            UPDATABLE.iter().map(|path| path.to_string()).collect()
        }
        Some(paths) => paths,
        None => {
            let set = [!backup.name.is_empty(), backup.expire_time.is_some(), !backup.labels.is_empty()];
            UPDATABLE.iter().zip(set).filter(|(_, set)| *set).map(|(path, _)| path.to_string()).collect()
        }
    };
    for path in paths.iter().filter(|path| !UPDATABLE.contains(&path.as_str())) {
        invalid
            .add("update_mask", format!("'{path}' cannot be updated; updatable: {}", UPDATABLE.join(", ")));
    }
    let has = |path: &str| paths.iter().any(|candidate| candidate == path);
    let mut patch = BackupPatch::default();
    if has("name") {
        match BackupName::parse(&backup.name) {
            Ok(name) => patch.name = Some(name),
            Err(problem) => invalid.add("backup.name", problem),
        }
    }
    if has("expire_time") {
        let time = backup
            .expire_time
            .as_ref()
            .and_then(|time| timestamp_from_pb("backup.expire_time", time, &mut invalid));
        if time.is_some_and(|time| time <= crate::domain::now()) {
            invalid.add("backup.expire_time", "must be in the future (clear it to keep the backup)");
        }
        patch.expire_time = Some(time);
    }
    if has("labels") {
        patch.labels = Some(labels_from_pb("backup.labels", &backup.labels, &mut invalid));
    }
    match id {
        Some(id) => invalid.into_result(|| (id, patch)),
        None => Err(invalid),
    }
}

pub(super) fn optional_name(name: &str, invalid: &mut Invalid) -> Option<BackupName> {
    if name.is_empty() {
        return None;
    }
    BackupName::parse(name).map_err(|problem| invalid.add("name", problem)).ok()
}

/// A RestoreBackup request, validated.
pub(crate) fn restore_backup_from_pb(request: pb::RestoreBackupRequest) -> Result<RestoreBackup, Invalid> {
    let mut invalid = Invalid::default();
    let backup_id = parse_id("backup_id", &request.backup_id, BackupId::parse, &mut invalid);
    let target_database_id =
        parse_optional_id("target_database_id", &request.target_database_id, DatabaseId::parse, &mut invalid);
    let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
    let Some(backup_id) = backup_id else { return Err(invalid) };
    invalid.into_result(|| RestoreBackup {
        backup_id,
        target_database_id,
        target_database_name: request.target_database_name.trim().to_owned(),
        request_id,
    })
}
