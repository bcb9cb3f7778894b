//! The export requests that read a stored backup: ExportBackup and DownloadBackup.

use super::*;
use crate::domain::BackupId;
use crate::download::chunks::Chunk;
use crate::service::{DownloadBackup, ExportBackup, ExportedBackup};

/// The link lifetime when the request gives none.
pub(crate) const DEFAULT_URL_TTL: Duration = Duration::from_secs(60 * 60);

/// The longest link lifetime (S3's limit for presigned URLs too).
pub(crate) const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// An ExportBackup request, validated.
pub(crate) fn export_backup_from_pb(request: pb::ExportBackupRequest) -> Result<ExportBackup, Invalid> {
    let mut invalid = Invalid::default();
    let backup_id = parse_id("backup_id", &request.backup_id, BackupId::parse, &mut invalid);
    let url_ttl = url_ttl_from_pb(request.url_ttl.as_ref(), &mut invalid);
    match (backup_id, url_ttl, invalid.is_empty()) {
        (Some(backup_id), Some(url_ttl), true) => {
            Ok(ExportBackup { backup_id, database_name: request.database_name.trim().to_owned(), url_ttl })
        }
        _ => Err(invalid),
    }
}

/// A DownloadBackup request, validated.
pub(crate) fn download_backup_from_pb(request: pb::DownloadBackupRequest) -> Result<DownloadBackup, Invalid> {
    let mut invalid = Invalid::default();
    let backup_id = parse_id("backup_id", &request.backup_id, BackupId::parse, &mut invalid);
    let offset = u64::try_from(request.offset).ok();
    if offset.is_none() {
        invalid.add("offset", "must not be negative");
    }
    match (backup_id, offset, invalid.is_empty()) {
        (Some(backup_id), Some(offset), true) => {
            Ok(DownloadBackup { backup_id, database_name: request.database_name.trim().to_owned(), offset })
        }
        _ => Err(invalid),
    }
}

// Unset or zero: the default; whole seconds from 1 s to 7 days.
fn url_ttl_from_pb(ttl: Option<&prost_types::Duration>, invalid: &mut Invalid) -> Option<Duration> {
    let Some(ttl) = ttl.filter(|ttl| ttl.seconds != 0 || ttl.nanos != 0) else {
        return Some(DEFAULT_URL_TTL);
    };
    let ttl = duration_from_pb("url_ttl", ttl, invalid)?;
    if ttl < Duration::from_secs(1) {
        invalid.add("url_ttl", "must be at least 1 second");
        return None;
    }
    if ttl > MAX_URL_TTL {
        invalid.add("url_ttl", "must be at most 7 days (604800 s)");
        return None;
    }
    Some(Duration::from_secs(ttl.as_secs()))
}

pub(crate) fn exported_backup_to_pb(exported: &ExportedBackup) -> pb::ExportBackupResponse {
    pb::ExportBackupResponse {
        download_url: exported.download_url.to_string(),
        download_url_expire_time: Some(timestamp_to_pb(exported.expire_time)),
        backup: Some(super::backup_to_pb(&exported.backup)),
    }
}

/// One message of the stream; `backup` goes with the first only.
pub(crate) fn chunk_to_pb(chunk: Chunk, backup: Option<pb::Backup>) -> pb::DownloadBackupResponse {
    pb::DownloadBackupResponse {
        data: chunk.data,
        offset: i64::try_from(chunk.offset).unwrap_or(i64::MAX),
        backup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b5e1c3a-4a8f-4f0e-9a55-3c2b1d0e9f88";

    fn ttl(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    fn check(url_ttl: Option<prost_types::Duration>, expected: Result<u64, &str>) {
        let request =
            pb::ExportBackupRequest { backup_id: ID.to_owned(), url_ttl, database_name: String::new() };
        match (export_backup_from_pb(request), expected) {
            (Ok(export), Ok(seconds)) => {
                assert_eq!(export.url_ttl, Duration::from_secs(seconds), "{url_ttl:?}")
            }
            (Err(invalid), Err(fragment)) => {
                assert_eq!(invalid.violations[0].field, "url_ttl");
                assert!(invalid.to_string().contains(fragment), "{invalid}");
            }
            (other, expected) => panic!("{url_ttl:?}: got {other:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn url_ttls() {
        for (url_ttl, expected) in [
            (None, Ok(3600)),
            (ttl(0, 0), Ok(3600)),
            (ttl(1, 0), Ok(1)),
            (ttl(90, 500_000_000), Ok(90)),
            (ttl(604_800, 0), Ok(604_800)),
            (ttl(604_800, 1), Err("at most 7 days")),
            (ttl(604_801, 0), Err("at most 7 days")),
            (ttl(-1, 0), Err("must not be negative")),
            (ttl(0, 500), Err("at least 1 second")),
        ] {
            check(url_ttl, expected);
        }
    }

    #[test]
    fn download_requests() {
        let request = |offset| pb::DownloadBackupRequest {
            backup_id: ID.to_owned(),
            offset,
            database_name: " db ".into(),
        };
        let download = download_backup_from_pb(request(7)).unwrap();
        assert_eq!((download.offset, download.database_name.as_str()), (7, "db"));
        let invalid = download_backup_from_pb(request(-1)).unwrap_err();
        assert_eq!(invalid.violations[0].field, "offset");
        let invalid = download_backup_from_pb(pb::DownloadBackupRequest {
            backup_id: "x".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(invalid.violations[0].field, "backup_id");
    }
}
