//! Backups in the catalog and their names.

use super::{
    BackupId, BackupOrigin, BackupState, Compression, DatabaseId, DestinationId, EngineKind, Labels,
    Timestamp,
};

/// A backup's display name: 3 to 39 characters matching
/// `^[a-zA-Z0-9]+((-|\s|\/|:)[a-zA-Z0-9]+)*$` (runs of letters and digits joined by single
/// `-`, whitespace, `/` or `:`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupName(String);

impl BackupName {
    /// Checks a name; the error describes the rule that failed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let length = text.chars().count();
        if !(3..=39).contains(&length) {
            return Err(format!("must be 3 to 39 characters long, got {length}"));
        }
        let mut previous_was_separator = true; // no separator may lead
        for c in text.chars() {
            let separator = c == '-' || c == '/' || c == ':' || c.is_whitespace();
            match (separator, previous_was_separator) {
                (true, true) => return Err(bad_pattern()),
                (false, _) if !c.is_ascii_alphanumeric() => return Err(bad_pattern()),
                _ => previous_was_separator = separator,
            }
        }
        if previous_was_separator {
            return Err(bad_pattern());
        }
        Ok(BackupName(text.to_owned()))
    }

    /// The default name of a backup created at `time`, e.g. `backup-2026-11-21T05:50:12Z`.
    pub fn from_time(time: Timestamp) -> Self {
        BackupName(time.format("backup-%Y-%m-%dT%H:%M:%SZ").to_string())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn bad_pattern() -> String {
    "must be letters and digits joined by single '-', ' ', '/' or ':' \
     (pattern ^[a-zA-Z0-9]+((-|\\s|\\/|:)[a-zA-Z0-9]+)*$)"
        .to_owned()
}

impl TryFrom<String> for BackupName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        BackupName::parse(&text)
    }
}

impl From<BackupName> for String {
    fn from(name: BackupName) -> String {
        name.0
    }
}

impl std::fmt::Display for BackupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A backup: one stored snapshot of a database, plus its manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backup {
    /// Server-assigned id.
    pub id: BackupId,
    /// Display name.
    pub name: BackupName,
    /// The database it was taken from; `None` for an import not filed under one.
    pub database_id: Option<DatabaseId>,
    /// The database's display name when the backup was taken.
    pub instance_name: String,
    /// The logical database inside the server, where the engine has them.
    pub database_name: String,
    /// Tenant id, inherited from the database.
    pub project_id: String,
    /// The engine that produced the data.
    pub engine: EngineKind,
    /// The server version that produced the data.
    pub server_version: String,
    /// Where it is in its life.
    pub state: BackupState,
    /// Stored size in bytes (after compression).
    pub size_bytes: u64,
    /// Size before compression.
    pub logical_size_bytes: u64,
    /// Hex SHA-256 of the stored bytes; empty until ready.
    pub sha256: String,
    /// Compression of the stored bytes.
    pub compression: Compression,
    /// The data format: `rdb`, `pg_custom`, `mysql_sql`.
    pub format: String,
    /// The destination holding the objects.
    pub destination_id: DestinationId,
    /// The data object's key inside the destination.
    pub object_key: String,
    /// The data object's full URI (no secrets).
    pub uri: String,
    /// Why it exists.
    pub origin: BackupOrigin,
    /// When it was created.
    pub create_time: Timestamp,
    /// When it last changed.
    pub update_time: Timestamp,
    /// When it expires; `None` for never.
    pub expire_time: Option<Timestamp>,
    /// Free-form labels.
    pub labels: Labels,
    /// For a backup of every logical database of a server: one object per database
    /// (then `object_key` is the manifest's and `sha256` the manifest's). Empty for a
    /// backup held in one object.
    pub parts: Vec<BackupPart>,
    /// The age recipients its objects are encrypted to (compressed, then encrypted);
    /// empty: not encrypted.
    #[serde(default)]
    pub age_recipients: Vec<super::AgeRecipient>,
}

impl Backup {
    /// Whether its objects are age-encrypted.
    pub fn encrypted(&self) -> bool {
        !self.age_recipients.is_empty()
    }
}

/// One logical database's object in a whole-server backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupPart {
    /// The logical database.
    pub database_name: String,
    /// The data object's key inside the destination.
    pub object_key: String,
    /// The data object's full URI (no secrets).
    pub uri: String,
    /// Stored size in bytes.
    pub size_bytes: u64,
    /// Size before compression.
    pub logical_size_bytes: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// Items (tables) dumped.
    pub items: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names() {
        for good in ["abc", "nightly-1", "a b", "db/2026:01", "backup-2026-11-21T05:50:12Z", &"a".repeat(39)]
        {
            assert!(BackupName::parse(good).is_ok(), "{good}");
        }
        for bad in ["ab", "-abc", "abc-", "a--b", "a_b", "a  b", "é12", &"a".repeat(40)] {
            assert!(BackupName::parse(bad).is_err(), "{bad}");
        }
        let name = BackupName::from_time(chrono::Utc::now());
        assert!(BackupName::parse(name.as_str()).is_ok());
    }
}
