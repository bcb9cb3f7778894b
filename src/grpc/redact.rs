//! `Debug` for the generated messages that carry secrets (connection URIs with passwords,
//! credentials), so that no log line or panic message can print them.

use std::fmt;

use super::pb::cellar::v1 as pb;
use crate::domain::{redact_uri, shown_url};

/// Shows a map's keys only.
struct Keys<'a>(&'a std::collections::HashMap<String, String>);

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&String> = self.0.keys().collect();
        keys.sort();
        f.debug_set().entries(keys).finish()
    }
}

impl fmt::Debug for pb::Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("project_id", &self.project_id)
            .field("engine", &self.engine)
            .field("connection_uri", &redact_uri(&self.connection_uri))
            .field("backup_policy", &self.backup_policy)
            .field("labels", &self.labels)
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query may carry a token: only scheme, host, port and path are shown.
        let url =
            url::Url::parse(&self.url).map(|url| shown_url(&url)).unwrap_or_else(|_| redact_uri(&self.url));
        f.debug_struct("Webhook")
            .field("url", &url)
            .field("secret", &if self.secret.is_empty() { "" } else { "****" })
            .field("secret_set", &self.secret_set)
            .finish()
    }
}

impl fmt::Debug for pb::Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("uri", &redact_uri(&self.uri))
            .field("credentials", &Keys(&self.credentials))
            .field("options", &self.options)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ImportDatabaseRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources: Vec<String> = self.source_uris.iter().map(|uri| redact_uri(uri)).collect();
        f.debug_struct("ImportDatabaseRequest")
            .field("database_id", &self.database_id)
            .field("source_uris", &sources)
            .field("source_connection_uri", &redact_uri(&self.source_connection_uri))
            .field("credentials", &Keys(&self.credentials))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ImportBackupRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportBackupRequest")
            .field("name", &self.name)
            .field("connection_uri", &redact_uri(&self.connection_uri))
            .field("import_url", &redact_uri(&self.import_url))
            .field("credentials", &Keys(&self.credentials))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for pb::ExportDatabaseRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportDatabaseRequest")
            .field("database_id", &self.database_id)
            .field("export_uri", &redact_uri(&self.export_uri))
            .field("credentials", &Keys(&self.credentials))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let database = pb::Database {
            connection_uri: "redis://u:hunter2@h:1".into(),
            webhook: Some(pb::Webhook {
                url: "https://hooks.example.com/in?token=hunter2".into(),
                secret: "hunter2-hunter2-hunter2".into(),
                secret_set: false,
            }),
            ..Default::default()
        };
        let destination = pb::Destination {
            uri: "ftp://u:hunter2@h/d".into(),
            credentials: [("secret_key".to_owned(), "hunter2".to_owned())].into(),
            ..Default::default()
        };
        let export =
            pb::ExportDatabaseRequest { export_uri: "ftp://u:hunter2@h/x.gz".into(), ..Default::default() };
        let shown = format!("{database:?} {destination:?} {export:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("secret_key"));
    }
}
