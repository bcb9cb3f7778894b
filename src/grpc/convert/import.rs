//! The import requests.

use super::*;
use crate::domain::{ConnectionUri, DatabaseId, redact_uri};
use crate::service::ImportDatabase;

/// The most source URIs one import may name.
const MAX_SOURCES: usize = 100;

/// An ImportDatabase request, validated.
pub(crate) fn import_database_from_pb(request: pb::ImportDatabaseRequest) -> Result<ImportDatabase, Invalid> {
    let mut invalid = Invalid::default();
    let database_id = parse_id("database_id", &request.database_id, DatabaseId::parse, &mut invalid);
    let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
    let has_uris = !request.source_uris.is_empty();
    let has_live = !request.source_connection_uri.trim().is_empty();
    match (has_uris, has_live) {
        (false, false) => invalid.add("source_uris", "give source_uris or source_connection_uri"),
        (true, true) => {
            invalid.add("source_connection_uri", "give source_uris or source_connection_uri, not both")
        }
        _ => {}
    }
    if request.source_uris.len() > MAX_SOURCES {
        invalid.add("source_uris", format!("at most {MAX_SOURCES} sources"));
    }
    let mut source_uris = Vec::new();
    for (index, uri) in request.source_uris.iter().enumerate() {
        match url::Url::parse(uri.trim()) {
            Ok(url) if is_http(&url) && url.host_str().is_none_or(str::is_empty) => {
                invalid.add(format!("source_uris[{index}]"), "an http(s) URL needs a host")
            }
            Ok(url) => source_uris.push(url),
            // The URI may hold a password: the message shows it redacted.
            Err(error) => invalid
                .add(format!("source_uris[{index}]"), format!("'{}' is not a URI: {error}", redact_uri(uri))),
        }
    }
    let source_connection_uri = has_live
        .then(|| {
            ConnectionUri::parse(&request.source_connection_uri)
                .map_err(|problem| invalid.add("source_connection_uri", problem))
                .ok()
        })
        .flatten();
    let database_name = request.database_name.trim().to_owned();
    if !database_name.is_empty() {
        if request.import_all_databases {
            invalid.add("database_name", "must be empty when import_all_databases is true");
        } else if let Err(problem) = crate::engine::sql::check_database_name(&database_name) {
            invalid.add("database_name", problem);
        }
    }
    if request.import_all_databases && has_uris {
        invalid.add(
            "import_all_databases",
            "applies to a live source (source_connection_uri): a dump file is loaded into one database",
        );
    }
    let Some(database_id) = database_id else { return Err(invalid) };
    invalid.into_result(|| ImportDatabase {
        database_id,
        source_uris,
        source_connection_uri,
        database_name,
        import_all_databases: request.import_all_databases,
        request_id,
    })
}

fn is_http(url: &url::Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_one_kind_or_the_other_and_passwords_stay_hidden() {
        let base =
            pb::ImportDatabaseRequest { database_id: DatabaseId::new().to_string(), ..Default::default() };
        assert!(import_database_from_pb(base.clone()).is_err());
        let both = pb::ImportDatabaseRequest {
            source_uris: vec!["file:///tmp/a.rdb".into()],
            source_connection_uri: "redis://h:1".into(),
            ..base.clone()
        };
        assert_eq!(import_database_from_pb(both).unwrap_err().violations[0].field, "source_connection_uri");
        let bad = pb::ImportDatabaseRequest { source_uris: vec!["ftp//u:hunter2@h".into()], ..base.clone() };
        let error = import_database_from_pb(bad).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let no_host = pb::ImportDatabaseRequest {
            source_uris: vec!["file:///tmp/a.rdb".into(), "https://u:hunter2@/a.rdb".into()],
            ..base.clone()
        };
        let error = import_database_from_pb(no_host).unwrap_err();
        assert_eq!(error.violations[0].field, "source_uris[1]");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let good = pb::ImportDatabaseRequest {
            source_uris: vec![
                "file:///tmp/a.rdb.zst".into(),
                "https://u:hunter2@files.example.com/b.rdb".into(),
            ],
            ..base
        };
        assert_eq!(import_database_from_pb(good).unwrap().source_uris.len(), 2);
    }
}
