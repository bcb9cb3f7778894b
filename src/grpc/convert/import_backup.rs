//! The ImportBackup request.

use super::*;
use crate::domain::{Compression, ConnectionUri, DatabaseId, DestinationId, Secret, redact_uri};
use crate::service::{BackupImportSource, ImportBackup};

/// An ImportBackup request, validated.
pub(crate) fn import_backup_from_pb(request: pb::ImportBackupRequest) -> Result<ImportBackup, Invalid> {
    let mut invalid = Invalid::default();
    let name = super::backup::optional_name(&request.name, &mut invalid);
    let engine = match pb::Engine::try_from(request.engine) {
        Ok(_) => engine_from_pb(request.engine),
        Err(_) => {
            invalid.add("engine", format!("{} is not a known engine", request.engine));
            None
        }
    };
    let source = source_from_pb(&request, &mut invalid);
    let compression = match compression_from_pb("compression", request.compression, &mut invalid) {
        Some(Compression::None) => {
            invalid.add(
                "compression",
                "must be COMPRESSION_GZIP or COMPRESSION_ZSTD: backups are stored compressed",
            );
            Compression::Gzip
        }
        Some(compression) => compression,
        None => Compression::Gzip,
    };
    let destination_id =
        parse_optional_id("destination_id", &request.destination_id, DestinationId::parse, &mut invalid);
    let database_id = parse_optional_id("database_id", &request.database_id, DatabaseId::parse, &mut invalid);
    let expire_time =
        request.expire_time.as_ref().and_then(|time| timestamp_from_pb("expire_time", time, &mut invalid));
    if expire_time.is_some_and(|time| time <= crate::domain::now()) {
        invalid.add("expire_time", "must be in the future");
    }
    let labels = labels_from_pb("labels", &request.labels, &mut invalid);
    let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
    let Some(source) = source else { return Err(invalid) };
    invalid.into_result(|| ImportBackup {
        name,
        engine,
        source,
        import_all_databases: request.import_all_databases,
        compression,
        destination_id,
        database_id,
        expire_time,
        labels,
        request_id,
    })
}

// Exactly one of `connection_uri` and `import_url`; credentials go with an archive.
fn source_from_pb(request: &pb::ImportBackupRequest, invalid: &mut Invalid) -> Option<BackupImportSource> {
    let live = request.connection_uri.trim();
    let archive = request.import_url.trim();
    match (live.is_empty(), archive.is_empty()) {
        (true, true) => {
            invalid.add("import_url", "give import_url (an archive) or connection_uri (a live database)");
            None
        }
        (false, false) => {
            invalid.add("connection_uri", "give import_url or connection_uri, not both");
            None
        }
        (false, true) => {
            if !request.credentials.is_empty() {
                invalid.add("credentials", "apply to import_url: a live source's credentials are in its URI");
            }
            ConnectionUri::parse(live)
                .map_err(|problem| invalid.add("connection_uri", problem))
                .ok()
                .map(BackupImportSource::Live)
        }
        (true, false) => {
            let url = match url::Url::parse(archive) {
                Ok(url) if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) => {
                    invalid.add("import_url", format!("'{}' needs a host", redact_uri(archive)));
                    return None;
                }
                // The URI may hold a password: messages show it redacted.
                Ok(_) => ConnectionUri::parse_location(archive)
                    .map_err(|problem| invalid.add("import_url", problem))
                    .ok()?,
                Err(error) => {
                    invalid.add("import_url", format!("'{}' is not a URI: {error}", redact_uri(archive)));
                    return None;
                }
            };
            let credentials = request
                .credentials
                .iter()
                .map(|(key, value)| (key.clone(), Secret::new(value.clone())))
                .collect();
            Some(BackupImportSource::Archive { url, credentials })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::ImportBackupRequest {
        pb::ImportBackupRequest {
            import_url: "https://files.example.com/db.rdb.gz".into(),
            ..Default::default()
        }
    }

    #[test]
    fn one_source_and_a_stored_compression() {
        let import = import_backup_from_pb(request()).unwrap();
        assert_eq!(import.compression, Compression::Gzip);
        assert!(matches!(import.source, BackupImportSource::Archive { .. }));
        let neither = pb::ImportBackupRequest { import_url: String::new(), ..request() };
        assert_eq!(import_backup_from_pb(neither).unwrap_err().violations[0].field, "import_url");
        let both = pb::ImportBackupRequest { connection_uri: "redis://h:1".into(), ..request() };
        assert_eq!(import_backup_from_pb(both).unwrap_err().violations[0].field, "connection_uri");
        let none = pb::ImportBackupRequest { compression: pb::Compression::None as i32, ..request() };
        assert_eq!(import_backup_from_pb(none).unwrap_err().violations[0].field, "compression");
        let zstd = pb::ImportBackupRequest { compression: pb::Compression::Zstd as i32, ..request() };
        assert_eq!(import_backup_from_pb(zstd).unwrap().compression, Compression::Zstd);
    }

    #[test]
    fn bad_fields_are_named_and_passwords_stay_hidden() {
        let bad = pb::ImportBackupRequest {
            name: "-bad-".into(),
            engine: 42,
            database_id: "nope".into(),
            import_url: "https://u:hunter2@/a.rdb".into(),
            ..Default::default()
        };
        let error = import_backup_from_pb(bad).unwrap_err();
        let fields: Vec<&str> = error.violations.iter().map(|violation| violation.field.as_str()).collect();
        assert_eq!(fields, ["name", "engine", "import_url", "database_id"]);
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let live_with_credentials = pb::ImportBackupRequest {
            import_url: String::new(),
            connection_uri: "postgres://u:hunter2@db:5432/shop".into(),
            credentials: [("password".to_owned(), "x".to_owned())].into(),
            ..Default::default()
        };
        let error = import_backup_from_pb(live_with_credentials).unwrap_err();
        assert_eq!(error.violations[0].field, "credentials");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
