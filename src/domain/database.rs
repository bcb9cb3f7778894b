//! Registered databases and their backup policies.

use std::time::Duration;

use super::enums::Compression;
use super::{ConnectionUri, DatabaseId, DestinationId, EngineKind, Invalid, Labels, Timestamp, Webhook};

/// A validated display name for a database or destination: 1 to 63 characters, letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit. Unique per kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceName(String);

impl ResourceName {
    /// Checks a name; the error describes the rule that failed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let starts_well = text.chars().next().is_some_and(|first| first.is_ascii_alphanumeric());
        let chars_ok = text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        match text.len() {
            0 => Err("is required".to_owned()),
            64.. => Err("must be at most 63 characters".to_owned()),
            _ if !starts_well || !chars_ok => {
                Err("must start with a letter or digit and contain only letters, digits, '-', '_' and '.'"
                    .to_owned())
            }
            _ => Ok(ResourceName(text.to_owned())),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ResourceName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        ResourceName::parse(&text)
    }
}

impl From<ResourceName> for String {
    fn from(name: ResourceName) -> String {
        name.0
    }
}

impl std::fmt::Display for ResourceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many backups retention keeps; zero in a field means "no rule of this kind".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RetentionPolicy {
    /// Keep the newest N backups.
    pub keep_last: u32,
    /// Keep the newest backup of each of the last N hours.
    pub keep_hourly: u32,
    /// Keep the newest backup of each of the last N days.
    pub keep_daily: u32,
    /// Keep the newest backup of each of the last N weeks.
    pub keep_weekly: u32,
    /// Keep the newest backup of each of the last N months.
    pub keep_monthly: u32,
}

/// Where, when and how a database is backed up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupPolicy {
    /// The destination backups go to; `None` means the built-in `local` destination.
    pub destination_id: Option<DestinationId>,
    /// A cron expression or `@every <duration>`; empty means no schedule.
    pub schedule: String,
    /// Compression of stored backups.
    pub compression: Compression,
    /// Which backups retention keeps.
    pub retention: RetentionPolicy,
    /// Default time-to-live of new backups; `None` means they do not expire.
    pub backup_ttl: Option<Duration>,
    /// The age recipients new backups are encrypted to; empty: not encrypted.
    #[serde(default)]
    pub age_recipients: Vec<super::AgeRecipient>,
}

impl Default for BackupPolicy {
    fn default() -> Self {
        BackupPolicy {
            destination_id: None,
            schedule: String::new(),
            compression: Compression::Zstd,
            retention: RetentionPolicy::default(),
            backup_ttl: None,
            age_recipients: Vec::new(),
        }
    }
}

/// A registered database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Server-assigned id.
    pub id: DatabaseId,
    /// Unique display name.
    pub name: ResourceName,
    /// Free-form tenant id; `default` unless set.
    pub project_id: String,
    /// The engine; matches the connection URI's scheme.
    pub engine: EngineKind,
    /// How to reach it; the password is secret.
    pub connection_uri: ConnectionUri,
    /// How it is backed up.
    pub backup_policy: BackupPolicy,
    /// Free-form labels.
    pub labels: Labels,
    /// Where completion notifications go; `None` for none.
    pub webhook: Option<Webhook>,
    /// When it was registered.
    pub create_time: Timestamp,
    /// When it last changed.
    pub update_time: Timestamp,
}

/// The project id used when a request gives none.
pub const DEFAULT_PROJECT: &str = "default";

impl Database {
    /// Checks that the connection URI's scheme belongs to the engine.
    pub fn check_engine_matches_uri(engine: EngineKind, uri: &ConnectionUri) -> Result<(), Invalid> {
        if engine.uri_schemes().contains(&uri.scheme()) {
            return Ok(());
        }
        Err(Invalid::field(
            "database.connection_uri",
            format!(
                "scheme '{}' does not match engine {}; expected {}",
                uri.scheme(),
                engine.as_str(),
                engine.uri_schemes().join(" or ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names() {
        for good in ["a", "cache-1", "orders.prod", "X_y"] {
            assert!(ResourceName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a b", "ü", &"x".repeat(64)] {
            assert!(ResourceName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn engine_must_match_scheme() {
        let redis = ConnectionUri::parse("rediss://h:6379").unwrap();
        assert!(Database::check_engine_matches_uri(EngineKind::Redis, &redis).is_ok());
        let error = Database::check_engine_matches_uri(EngineKind::Postgres, &redis).unwrap_err();
        assert_eq!(error.violations[0].field, "database.connection_uri");
    }
}
