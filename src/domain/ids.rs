//! Server-assigned identifiers: UUIDs wrapped in one type per resource.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses an id, accepting its resource-name prefix (`operations/`, ...) when
            /// present; `None` when the rest is not a UUID.
            pub fn parse(text: &str) -> Option<Self> {
                let bare = text.trim().strip_prefix($prefix).unwrap_or(text.trim());
                Uuid::parse_str(bare).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

id_type!(
    /// Identifies a registered database.
    DatabaseId, "databases/"
);
id_type!(
    /// Identifies a storage destination.
    DestinationId, "destinations/"
);
id_type!(
    /// Identifies a backup in the catalog.
    BackupId, "backups/"
);
id_type!(
    /// Identifies a long-running operation; its resource name is `operations/<uuid>`.
    OperationId, "operations/"
);

impl OperationId {
    /// The resource name clients see: `operations/<uuid>`.
    pub fn resource_name(&self) -> String {
        format!("operations/{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_parse_with_or_without_prefix() {
        let id = OperationId::new();
        assert_eq!(OperationId::parse(&id.to_string()), Some(id));
        assert_eq!(OperationId::parse(&id.resource_name()), Some(id));
        assert_eq!(OperationId::parse("operations/nope"), None);
        assert_eq!(OperationId::parse(""), None);
    }
}
