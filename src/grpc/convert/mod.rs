//! Conversions between protobuf messages and domain values. Validation happens here,
//! once: what comes out is valid by construction, and every problem of a request is
//! reported together.

mod backup;
mod database;
mod destination;
mod export;
mod export_database;
mod import;
mod import_backup;
mod operation;

pub(crate) use backup::{backup_patch_from_pb, backup_to_pb, create_backup_from_pb, restore_backup_from_pb};
pub(crate) use database::{database_patch_from_pb, database_to_pb, new_database_from_pb};
pub(crate) use destination::{destination_patch_from_pb, destination_to_pb, new_destination_from_pb};
pub(crate) use export::{chunk_to_pb, download_backup_from_pb, export_backup_from_pb, exported_backup_to_pb};
pub(crate) use export_database::export_database_from_pb;
pub(crate) use import::import_database_from_pb;
pub(crate) use import_backup::import_backup_from_pb;
pub(crate) use operation::operation_to_pb;

use std::time::Duration;

use crate::domain::list::{ListQuery, Schema};
use crate::domain::{Invalid, Labels, Timestamp};
use crate::grpc::pb::cellar::v1 as pb;

/// The longest request id accepted.
const MAX_REQUEST_ID: usize = 64;
/// The most labels a resource may carry.
const MAX_LABELS: usize = 64;

pub(crate) fn timestamp_to_pb(time: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.timestamp(), nanos: time.timestamp_subsec_nanos() as i32 }
}

pub(crate) fn optional_timestamp_to_pb(time: Option<Timestamp>) -> Option<prost_types::Timestamp> {
    time.map(timestamp_to_pb)
}

pub(crate) fn timestamp_from_pb(
    field: &str,
    time: &prost_types::Timestamp,
    invalid: &mut Invalid,
) -> Option<Timestamp> {
    let converted = u32::try_from(time.nanos)
        .ok()
        .and_then(|nanos| chrono::DateTime::from_timestamp(time.seconds, nanos));
    if converted.is_none() {
        invalid.add(field, "is not a valid timestamp");
    }
    converted.map(|time| {
        chrono::DurationRound::duration_trunc(time, chrono::Duration::microseconds(1)).unwrap_or(time)
    })
}

pub(crate) fn duration_to_pb(duration: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: duration.as_secs() as i64, nanos: duration.subsec_nanos() as i32 }
}

pub(crate) fn duration_from_pb(
    field: &str,
    duration: &prost_types::Duration,
    invalid: &mut Invalid,
) -> Option<Duration> {
    if duration.seconds < 0 || duration.nanos < 0 {
        invalid.add(field, "must not be negative");
        return None;
    }
    Some(Duration::new(duration.seconds as u64, duration.nanos as u32))
}

/// Parses a required id field; `kind` names the resource for the message.
pub(crate) fn parse_id<T>(
    field: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
    invalid: &mut Invalid,
) -> Option<T> {
    if text.trim().is_empty() {
        invalid.add(field, "is required");
        return None;
    }
    let parsed = parse(text);
    if parsed.is_none() {
        invalid.add(
            field,
            format!("'{}' is not a valid id (a UUID)", text.chars().take(64).collect::<String>()),
        );
    }
    parsed
}

/// Parses an optional id field (empty means none).
pub(crate) fn parse_optional_id<T>(
    field: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
    invalid: &mut Invalid,
) -> Option<T> {
    if text.trim().is_empty() { None } else { parse_id(field, text, parse, invalid) }
}

/// Parses a single-id request, for Get/Delete RPCs.
pub(crate) fn require_id<T>(field: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<T, Invalid> {
    let mut invalid = Invalid::default();
    let id = parse_id(field, text, parse, &mut invalid);
    match id {
        Some(id) => Ok(id),
        None => Err(invalid),
    }
}

pub(crate) fn request_id_from_pb(field: &str, text: &str, invalid: &mut Invalid) -> Option<String> {
    let text = text.trim();
    if text.len() > MAX_REQUEST_ID {
        invalid.add(field, format!("must be at most {MAX_REQUEST_ID} characters"));
    }
    (!text.is_empty()).then(|| text.to_owned())
}

/// Checks labels: at most 64; keys 1-63 letters, digits, `_`, `-`, starting with a letter;
/// values at most 255 characters.
pub(crate) fn labels_from_pb(
    field: &str,
    labels: &std::collections::HashMap<String, String>,
    invalid: &mut Invalid,
) -> Labels {
    if labels.len() > MAX_LABELS {
        invalid.add(field, format!("at most {MAX_LABELS} labels are allowed"));
    }
    for (key, value) in labels {
        let key_ok = key.len() <= 63
            && key.chars().next().is_some_and(|first| first.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !key_ok {
            invalid.add(
                format!("{field}.{key}"),
                "label keys are 1 to 63 letters, digits, '_' or '-', starting with a letter",
            );
        }
        if value.chars().count() > 255 {
            invalid.add(format!("{field}.{key}"), "label values are at most 255 characters");
        }
    }
    labels.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
}

pub(crate) fn labels_to_pb(labels: &Labels) -> std::collections::HashMap<String, String> {
    labels.iter().map(|(key, value)| (key.clone(), value.clone())).collect()
}

/// Validates the four list fields against a resource's schema.
pub(crate) fn list_query(
    schema: &Schema,
    page_size: i32,
    page_token: &str,
    filter: &str,
    order_by: &str,
) -> Result<ListQuery, Invalid> {
    ListQuery::parse(schema, page_size, page_token, filter, order_by)
}

pub(crate) fn total_size(total: u64) -> i32 {
    i32::try_from(total).unwrap_or(i32::MAX)
}

pub(crate) fn engine_to_pb(engine: crate::domain::EngineKind) -> i32 {
    use crate::domain::EngineKind;
    (match engine {
        EngineKind::Redis => pb::Engine::Redis,
        EngineKind::Postgres => pb::Engine::Postgres,
        EngineKind::Mysql => pb::Engine::Mysql,
    }) as i32
}

pub(crate) fn engine_from_pb(value: i32) -> Option<crate::domain::EngineKind> {
    use crate::domain::EngineKind;
    match pb::Engine::try_from(value).ok()? {
        pb::Engine::Redis => Some(EngineKind::Redis),
        pb::Engine::Postgres => Some(EngineKind::Postgres),
        pb::Engine::Mysql => Some(EngineKind::Mysql),
        pb::Engine::Unspecified => None,
    }
}

pub(crate) fn compression_to_pb(compression: crate::domain::Compression) -> i32 {
    use crate::domain::Compression;
    (match compression {
        Compression::Zstd => pb::Compression::Zstd,
        Compression::Gzip => pb::Compression::Gzip,
        Compression::None => pb::Compression::None,
    }) as i32
}

/// `Ok(None)` for UNSPECIFIED; an unknown number is a violation.
pub(crate) fn compression_from_pb(
    field: &str,
    value: i32,
    invalid: &mut Invalid,
) -> Option<crate::domain::Compression> {
    use crate::domain::Compression;
    match pb::Compression::try_from(value) {
        Ok(pb::Compression::Zstd) => Some(Compression::Zstd),
        Ok(pb::Compression::Gzip) => Some(Compression::Gzip),
        Ok(pb::Compression::None) => Some(Compression::None),
        Ok(pb::Compression::Unspecified) => None,
        Err(_) => {
            invalid.add(field, format!("{value} is not a known compression"));
            None
        }
    }
}

/// The paths of an update mask, or `None` when the mask is empty (meaning "every field
/// set to a non-default value"). `*` is expanded by the caller.
pub(crate) fn mask_paths(mask: Option<&prost_types::FieldMask>) -> Option<Vec<String>> {
    let paths: Vec<String> = mask
        .map(|mask| {
            mask.paths.iter().flat_map(|path| path.split(',')).map(|path| path.trim().to_owned()).collect()
        })
        .unwrap_or_default();
    let paths: Vec<String> = paths.into_iter().filter(|path| !path.is_empty()).collect();
    (!paths.is_empty()).then_some(paths)
}
