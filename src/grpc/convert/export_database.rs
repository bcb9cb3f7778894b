//! The ExportDatabase request.

use super::*;
use crate::domain::{ConnectionUri, DatabaseId, Secret, redact_uri};
use crate::service::ExportDatabase;

/// An ExportDatabase request, validated: the location is a URI with a scheme and, for
/// network schemes, a host; where it may go is the core's to check.
pub(crate) fn export_database_from_pb(request: pb::ExportDatabaseRequest) -> Result<ExportDatabase, Invalid> {
    let mut invalid = Invalid::default();
    let database_id = parse_id("database_id", &request.database_id, DatabaseId::parse, &mut invalid);
    let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
    let compression = compression_from_pb("compression", request.compression, &mut invalid);
    let export_uri = match request.export_uri.trim() {
        "" => {
            invalid.add("export_uri", "is required: where to write the snapshot");
            None
        }
        text => match url::Url::parse(text) {
            Ok(url) if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) => {
                invalid.add("export_uri", format!("'{}' needs a host", redact_uri(text)));
                None
            }
            // The URI may hold a password: messages show it redacted.
            Ok(_) => {
                ConnectionUri::parse_location(text).map_err(|problem| invalid.add("export_uri", problem)).ok()
            }
            Err(error) => {
                invalid.add("export_uri", format!("'{}' is not a URI: {error}", redact_uri(text)));
                None
            }
        },
    };
    let database_name = request.database_name.trim().to_owned();
    if !database_name.is_empty()
        && let Err(problem) = crate::engine::sql::check_database_name(&database_name)
    {
        invalid.add("database_name", problem);
    }
    let credentials = request.credentials.into_iter().map(|(key, value)| (key, Secret::new(value))).collect();
    let (Some(database_id), Some(export_uri)) = (database_id, export_uri) else { return Err(invalid) };
    invalid.into_result(|| ExportDatabase {
        database_id,
        export_uri,
        credentials,
        database_name,
        compression,
        request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(export_uri: &str) -> pb::ExportDatabaseRequest {
        pb::ExportDatabaseRequest {
            database_id: DatabaseId::new().to_string(),
            export_uri: export_uri.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn a_location_is_required_and_its_password_never_shown() {
        let export =
            export_database_from_pb(request("ftp://user:hunter2@ftp.example.com/exports/db.rdb.gz")).unwrap();
        assert!(!format!("{export:?}").contains("hunter2"));

        for (uri, expected) in
            [("", "is required"), ("not a uri", "is not a URI"), ("s3:/bucket/x", "needs a host")]
        {
            let invalid = export_database_from_pb(request(uri)).unwrap_err();
            assert!(invalid.to_string().contains(expected), "{uri}: {invalid}");
        }
        let invalid = export_database_from_pb(request("ftp://user:hunter2@/x")).unwrap_err();
        assert!(!invalid.to_string().contains("hunter2"), "{invalid}");
    }
}
