//! Facts about a server read from its `INFO` text: version, key count, dataset size.

/// What `INFO` tells about a server before a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServerFacts {
    /// `redis_version`: the Redis version the server is (or is compatible with).
    pub(crate) version: Option<String>,
    /// The server's own name and version when it is not Redis (`valkey 8.0.1`).
    pub(crate) flavour: Option<String>,
    /// Keys in all databases together, from the `# Keyspace` section.
    pub(crate) keys: u64,
    /// `used_memory_dataset` (or `used_memory` on old servers): an upper estimate of
    /// the RDB size, which is compact and often compressed.
    pub(crate) dataset_bytes: Option<u64>,
    /// `redis_mode` (Valkey: `server_mode`): `standalone`, `cluster` or `sentinel`.
    pub(crate) mode: Option<String>,
}

impl ServerFacts {
    /// Reads the `field:value` lines of an `INFO` reply; unknown lines are skipped.
    pub(crate) fn parse(info: &str) -> ServerFacts {
        let mut facts = ServerFacts::default();
        let mut used_memory = None;
        let mut server_name = None;
        let mut server_version = None;
        for line in info.lines() {
            let Some((field, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            match field {
                "redis_version" => facts.version = Some(value.to_owned()),
                "server_name" => server_name = Some(value.to_owned()),
                "valkey_version" => server_version = Some(value.to_owned()),
                "used_memory_dataset" => facts.dataset_bytes = value.parse().ok(),
                "used_memory" => used_memory = value.parse().ok(),
                "redis_mode" | "server_mode" => facts.mode = Some(value.to_owned()),
                _ if is_database(field) => facts.keys += keyspace_keys(value).unwrap_or(0),
                _ => {}
            }
        }
        facts.dataset_bytes = facts.dataset_bytes.or(used_memory);
        facts.flavour = match (server_name, server_version) {
            (Some(name), Some(version)) => Some(format!("{name} {version}")),
            (Some(name), None) if name != "redis" => Some(name),
            _ => None,
        };
        facts
    }
}

/// `db0`, `db15`: a keyspace line.
fn is_database(field: &str) -> bool {
    field
        .strip_prefix("db")
        .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

/// The `keys=` count of `keys=3,expires=1,avg_ttl=0`.
fn keyspace_keys(value: &str) -> Option<u64> {
    value.split(',').find_map(|pair| pair.strip_prefix("keys="))?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIS_7: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n\
        # Memory\r\nused_memory:1000000\r\nused_memory_dataset:12345\r\n\r\n\
        # Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb12:keys=40,expires=0,avg_ttl=0\r\n";

    #[test]
    fn reads_version_keys_and_dataset_size() {
        let facts = ServerFacts::parse(REDIS_7);
        let expected = ServerFacts {
            version: Some("7.0.15".into()),
            flavour: None,
            keys: 43,
            dataset_bytes: Some(12345),
            mode: Some("standalone".into()),
        };
        assert_eq!(facts, expected);
    }

    #[test]
    fn old_servers_estimate_from_used_memory() {
        let facts = ServerFacts::parse("redis_version:3.2.0\nused_memory:999\n");
        assert_eq!((facts.dataset_bytes, facts.keys), (Some(999), 0));
    }

    #[test]
    fn names_compatible_servers() {
        let info = "server_name:valkey\r\nredis_version:7.2.4\r\nvalkey_version:8.0.1\r\n";
        let facts = ServerFacts::parse(info);
        assert_eq!(facts.version.as_deref(), Some("7.2.4"));
        assert_eq!(facts.flavour.as_deref(), Some("valkey 8.0.1"));
    }

    #[test]
    fn reads_the_mode_either_name_gives() {
        assert_eq!(ServerFacts::parse("redis_mode:cluster\r\n").mode.as_deref(), Some("cluster"));
        assert_eq!(ServerFacts::parse("server_mode:standalone\r\n").mode.as_deref(), Some("standalone"));
        assert_eq!(ServerFacts::parse("redis_version:7.0.15\r\n").mode, None);
    }

    #[test]
    fn ignores_lines_that_only_look_like_keyspace() {
        let facts = ServerFacts::parse("db:keys=5\r\ndbx:keys=5\r\ndb1:expires=2\r\ndb2:keys=7\r\n");
        assert_eq!(facts.keys, 7);
    }
}
