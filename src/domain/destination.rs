//! Named storage locations that backups are written to.

use std::collections::BTreeMap;

use super::{DestinationId, Labels, ResourceName, Secret, Timestamp};

/// A storage location: local directory, S3, GCS, Azure Blob, FTP or HTTP(S).
#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    /// Server-assigned id.
    pub id: DestinationId,
    /// Unique display name; `local` is the built-in one.
    pub name: ResourceName,
    /// The location URI (`file:///abs/dir`, `s3://bucket/prefix`, ...). May hold a
    /// password (`ftp://user:pass@host/dir`): show it only through `redact_uri`.
    pub uri: String,
    /// Write-only credentials (keys, tokens); never returned.
    pub credentials: BTreeMap<String, Secret>,
    /// Backend options (`endpoint`, `region`, `allow_http`, ...).
    pub options: BTreeMap<String, String>,
    /// Free-form labels.
    pub labels: Labels,
    /// When it was created.
    pub create_time: Timestamp,
    /// When it last changed.
    pub update_time: Timestamp,
}

impl Destination {
    /// A destination that is not in the catalog: a new id, no labels, made now. For
    /// opening a store directly (tools and tests), not for registering one.
    pub fn unregistered(
        name: ResourceName,
        uri: &str,
        credentials: &[(&str, &str)],
        options: &[(&str, &str)],
    ) -> Destination {
        let now = super::now();
        Destination {
            id: DestinationId::new(),
            name,
            uri: uri.to_owned(),
            credentials: credentials
                .iter()
                .map(|(key, value)| ((*key).to_owned(), Secret::new(*value)))
                .collect(),
            options: options.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect(),
            labels: Labels::new(),
            create_time: now,
            update_time: now,
        }
    }
}

impl std::fmt::Debug for Destination {
    // The URI may carry a password; credentials print as `Secret(****)` on their own.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("uri", &super::redact_uri(&self.uri))
            .field("credentials", &self.credentials)
            .field("options", &self.options)
            .field("labels", &self.labels)
            .field("create_time", &self.create_time)
            .field("update_time", &self.update_time)
            .finish()
    }
}

/// The name of the destination every deployment has from its first start.
pub const LOCAL_DESTINATION: &str = "local";

/// The URI schemes a destination may use.
pub const DESTINATION_SCHEMES: &[&str] = &["file", "s3", "gs", "abs", "az", "ftp", "http", "https"];

/// Checks a destination URI's shape (scheme known, `file://` absolute, a bucket or host
/// present). The message never repeats the URI, which may hold a password.
pub fn check_destination_uri(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text.trim()).map_err(|error| format!("not a valid URI: {error}"))?;
    let scheme = url.scheme();
    if !DESTINATION_SCHEMES.contains(&scheme) {
        return Err(format!(
            "unsupported scheme '{scheme}'; expected one of {}",
            DESTINATION_SCHEMES.join(", ")
        ));
    }
    match scheme {
        "file" => {
            if url.host_str().is_some_and(|host| !host.is_empty() && host != "localhost") {
                return Err("file URIs must not name a host: use file:///absolute/dir".to_owned());
            }
            if !url.path().starts_with('/') || url.path() == "/" {
                return Err("file URIs need an absolute directory other than /".to_owned());
            }
            Ok(())
        }
        _ if url.host_str().unwrap_or_default().is_empty() => {
            Err(format!("{scheme} URIs need a bucket, container or host"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_uris() {
        for good in [
            "file:///var/backups",
            "s3://bucket/prefix",
            "gs://bucket",
            "abs://key@account/container/prefix",
            "az://container/prefix",
            "ftp://u:p@127.0.0.1:21/dir",
            "https://example.test/dir",
        ] {
            assert_eq!(check_destination_uri(good), Ok(()), "{good}");
        }
        for bad in ["file://host/x", "file:///", "relative/dir", "s3:///nobucket", "gopher://h/x"] {
            assert!(check_destination_uri(bad).is_err(), "{bad}");
        }
        let error = check_destination_uri("gopher://u:hunter2@h/x").unwrap_err();
        assert!(!error.contains("hunter2"));
    }

    #[test]
    fn debug_hides_the_uri_password() {
        let now = crate::domain::now();
        let destination = Destination {
            id: DestinationId::new(),
            name: ResourceName::parse("ftp").unwrap(),
            uri: "ftp://u:hunter2@127.0.0.1/dir".to_owned(),
            credentials: [("key".to_owned(), Secret::new("hunter3"))].into(),
            options: Default::default(),
            labels: Default::default(),
            create_time: now,
            update_time: now,
        };
        let shown = format!("{destination:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
    }
}
