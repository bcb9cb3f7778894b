//! What a load by replication borrows from its target (the master it is told to follow,
//! and settings with their values before), as the journal records it, and how it is
//! given back: at the end of a load, from a cancelled load's background task, and at the
//! next start after a crash.
//!
//! Giving back is a decision on what the target shows now, so that it is right whoever
//! changed what since: replication is ended only while the target still follows the
//! recorded address, and a setting is put back only while it still holds the value the
//! load set (compared by SHA-256, so that the one-time password is never on disk);
//! anything an operator changed since is left alone.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::connection::{Connection, Reply, refused};
use super::restore::Limits;
use super::target::Target;
use crate::domain::ConnectionUri;
use crate::engine::Error;

/// The journal kind of these records.
pub(crate) const KIND: &str = "redis-replication";

/// What a load by replication borrows from its target. `Debug` hides the values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Borrowed {
    /// The host the target is told to replicate from (`REPLICAOF <host> <port>`).
    pub(crate) master_host: String,
    /// The port it is told to replicate from.
    pub(crate) master_port: u16,
    /// The replication id our `+FULLRESYNC` gives: a target that took it as its own (or
    /// as its previous one) loaded the whole file.
    pub(crate) replication_id: String,
    /// The settings changed, in the order they are set.
    pub(crate) settings: Vec<Setting>,
}

/// One borrowed setting.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Setting {
    /// Its name (`masterauth`).
    pub(crate) name: String,
    /// Its value before, in hex (a Redis password need not be UTF-8); a secret for
    /// `masterauth`.
    pub(crate) original_hex: String,
    /// The SHA-256 (hex) of the value the load set.
    pub(crate) ours_sha256: String,
}

impl std::fmt::Debug for Borrowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.settings.iter().map(|setting| setting.name.as_str()).collect();
        f.debug_struct("Borrowed")
            .field("master_host", &self.master_host)
            .field("master_port", &self.master_port)
            .field("replication_id", &self.replication_id)
            .field("settings", &names)
            .finish()
    }
}

impl Setting {
    /// A setting whose value was `original` and is set to `ours`.
    pub(crate) fn new(name: &str, original: &[u8], ours: &[u8]) -> Setting {
        Setting { name: name.to_owned(), original_hex: hex::encode(original), ours_sha256: sha256(ours) }
    }

    fn holds_ours(&self, current: &[u8]) -> bool {
        sha256(current) == self.ours_sha256
    }
}

fn sha256(value: &[u8]) -> String {
    hex::encode(Sha256::digest(value))
}

impl Borrowed {
    /// Reads a journal record; the message never quotes it.
    pub(crate) fn from_record(record: serde_json::Value) -> Result<Borrowed, String> {
        let borrowed: Borrowed = serde_json::from_value(record)
            .map_err(|_| "not a redis replication record this version reads".to_owned())?;
        for setting in &borrowed.settings {
            hex::decode(&setting.original_hex)
                .map_err(|_| format!("the value recorded for {} is not hex", setting.name))?;
        }
        Ok(borrowed)
    }

    /// The journal record.
    pub(crate) fn to_record(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What the target shows now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    /// The master it follows (`master_host`, `master_port`), when it is a replica.
    pub(crate) master: Option<(String, u16)>,
    /// Its replication ids (`master_replid`, `master_replid2`).
    pub(crate) replication_ids: Vec<String>,
    /// The borrowed settings' current values (a setting the server does not answer for
    /// is missing).
    pub(crate) settings: Vec<(String, Vec<u8>)>,
}

impl Observed {
    /// Reads the replication fields of an `INFO replication` text.
    fn read_info(info: &str) -> Observed {
        let field = |name: &str| {
            info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(str::trim_end)
        };
        let master = match (field("role"), field("master_host"), field("master_port")) {
            (Some("slave" | "replica"), Some(host), Some(port)) => {
                port.parse().ok().map(|port| (host.to_owned(), port))
            }
            _ => None,
        };
        let replication_ids = ["master_replid", "master_replid2"]
            .into_iter()
            .filter_map(|name| field(name).map(str::to_owned))
            .collect();
        Observed { master, replication_ids, settings: Vec::new() }
    }
}

/// Which data the target holds after giving back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Data {
    /// It finished loading the file: the new data.
    New,
    /// It was still our replica and never finished: its old data (swapdb kept it).
    Old,
    /// It follows us no more and never took our replication id (restarted, or an
    /// operator ended replication before it loaded): whatever it holds now.
    Unknown,
}

impl Data {
    /// For people.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Data::New => "the target had loaded the whole file: it keeps the new data",
            Data::Old => "the target had not finished loading: it keeps its old data (swapdb)",
            Data::Unknown => "the target no longer followed this load: its data is whatever it holds now",
        }
    }
}

/// What to do to give a target back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undo {
    /// Send `REPLICAOF NO ONE`: it still follows the recorded address.
    pub(crate) end_replication: bool,
    /// Settings to set back (name, value before).
    pub(crate) put_back: Vec<(String, Vec<u8>)>,
    /// Settings that hold something else than what the load set: left as they are.
    pub(crate) left: Vec<String>,
    /// Which data it keeps.
    pub(crate) data: Data,
}

/// Decides how to give `borrowed` back from what the target shows now.
pub(crate) fn decide(borrowed: &Borrowed, observed: &Observed) -> Undo {
    let ours = (borrowed.master_host.clone(), borrowed.master_port);
    let end_replication = observed.master.as_ref() == Some(&ours);
    let loaded = observed.replication_ids.contains(&borrowed.replication_id);
    let data = match (loaded, end_replication) {
        (true, _) => Data::New,
        (false, true) => Data::Old,
        (false, false) => Data::Unknown,
    };
    let mut put_back = Vec::new();
    let mut left = Vec::new();
    for setting in &borrowed.settings {
        let current = observed.settings.iter().find(|(name, _)| *name == setting.name);
        match current {
            Some((_, value)) if setting.holds_ours(value) => {
                // Checked hex when the record was read or built.
                let original = hex::decode(&setting.original_hex).unwrap_or_default();
                put_back.push((setting.name.clone(), original));
            }
            _ => left.push(setting.name.clone()),
        }
    }
    Undo { end_replication, put_back, left, data }
}

/// Gives `borrowed` back over `control`: reads what the target shows, then ends
/// replication and sets back what still holds the load's values. Names settings only,
/// never values.
pub(crate) async fn give_back(control: &mut Connection, borrowed: &Borrowed) -> Result<Undo, Error> {
    let info = match control.command(&[b"INFO", b"replication"]).await? {
        Reply::Bulk(Some(text)) => String::from_utf8_lossy(&text).into_owned(),
        other => return Err(refused(control, "INFO", &other)),
    };
    let mut observed = Observed::read_info(&info);
    for setting in &borrowed.settings {
        match control.command(&[b"CONFIG", b"GET", setting.name.as_bytes()]).await? {
            Reply::Array(Some(pair)) => {
                if let [_, Reply::Bulk(Some(value))] = pair.as_slice() {
                    observed.settings.push((setting.name.clone(), value.to_vec()));
                }
            }
            other => return Err(refused(control, "CONFIG GET", &other)),
        }
    }
    let undo = decide(borrowed, &observed);
    if undo.end_replication {
        let reply = control.command(&[b"REPLICAOF", b"NO", b"ONE"]).await?;
        if !matches!(reply, Reply::Status(_)) {
            return Err(refused(control, "REPLICAOF NO ONE", &reply));
        }
    }
    for (name, value) in &undo.put_back {
        let reply = control.command(&[b"CONFIG", b"SET", name.as_bytes(), value]).await?;
        if !matches!(reply, Reply::Status(_)) {
            // The value it had before, refused: trying again would not help.
            let error = refused(control, &format!("CONFIG SET {name}"), &reply);
            tracing::warn!(redis = control.label(), setting = %name, %error, "setting not put back");
        }
    }
    Ok(undo)
}

/// Gives back what a load that stopped (a crash) borrowed from the target at `uri`,
/// from its journal `record`.
pub(crate) async fn give_back_left(
    uri: &ConnectionUri,
    record: serde_json::Value,
    limits: Limits,
) -> Result<Undo, Error> {
    let borrowed = Borrowed::from_record(record).map_err(Error::Unsupported)?;
    let target = Target::from_uri(uri)?;
    let mut control = Connection::open(&target, limits.connect_timeout, limits.idle_timeout).await?;
    give_back(&mut control, &borrowed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &[u8] = b"one-time-password";

    fn borrowed() -> Borrowed {
        Borrowed {
            master_host: "10.0.0.5".to_owned(),
            master_port: 41000,
            replication_id: "a".repeat(40),
            settings: vec![
                Setting::new("masterauth", b"their-own-password", OURS),
                Setting::new("masteruser", b"", b""),
                Setting::new("repl-diskless-load", b"disabled", b"swapdb"),
            ],
        }
    }

    fn observed(master: Option<(&str, u16)>, ids: &[&str], settings: &[(&str, &[u8])]) -> Observed {
        Observed {
            master: master.map(|(host, port)| (host.to_owned(), port)),
            replication_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
            settings: settings.iter().map(|(name, value)| ((*name).to_owned(), value.to_vec())).collect(),
        }
    }

    const ALL_OURS: [(&str, &[u8]); 3] =
        [("masterauth", OURS), ("masteruser", b""), ("repl-diskless-load", b"swapdb")];

    fn put_back(undo: &Undo) -> Vec<(&str, &[u8])> {
        undo.put_back.iter().map(|(name, value)| (name.as_str(), value.as_slice())).collect()
    }

    #[test]
    fn a_record_round_trips_without_the_one_time_password_and_hides_values_in_debug() {
        let record = borrowed().to_record();
        let text = record.to_string();
        assert!(!text.contains("one-time-password"), "only a hash of ours: {text}");
        assert!(!text.contains(&hex::encode(OURS)), "{text}");
        assert!(text.contains(&hex::encode("their-own-password")), "the value before, in hex: {text}");
        for field in ["master_host", "master_port", "replication_id", "original_hex", "ours_sha256"] {
            assert!(text.contains(field), "{field}: {text}");
        }
        assert_eq!(Borrowed::from_record(record).unwrap(), borrowed());
        let shown = format!("{:?}", borrowed());
        assert!(
            !shown.contains(&hex::encode("their-own-password")) && shown.contains("masterauth"),
            "{shown}"
        );

        let bad = serde_json::json!({"master_host": "x", "password": "hunter2"});
        let error = Borrowed::from_record(bad).unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        let mut not_hex = borrowed();
        not_hex.settings[0].original_hex = "zz-hunter2".to_owned();
        let error = Borrowed::from_record(not_hex.to_record()).unwrap_err();
        assert!(error.contains("masterauth") && !error.contains("hunter2"), "{error}");
    }

    #[test]
    fn still_our_replica_is_ended_and_every_setting_put_back() {
        let undo =
            decide(&borrowed(), &observed(Some(("10.0.0.5", 41000)), &["b".repeat(40).as_str()], &ALL_OURS));
        assert!(undo.end_replication);
        assert_eq!(
            put_back(&undo),
            [
                ("masterauth", &b"their-own-password"[..]),
                ("masteruser", b""),
                ("repl-diskless-load", b"disabled")
            ]
        );
        assert!(undo.left.is_empty());
        assert_eq!(undo.data, Data::Old, "never took our replication id");
    }

    #[test]
    fn a_target_that_took_our_replication_id_keeps_the_new_data() {
        let ours = "a".repeat(40);
        let undo = decide(&borrowed(), &observed(Some(("10.0.0.5", 41000)), &[&ours], &ALL_OURS));
        assert_eq!((undo.end_replication, undo.data), (true, Data::New));
        // Replication ended before the crash: our id is its previous one.
        let undo = decide(&borrowed(), &observed(None, &["c".repeat(40).as_str(), &ours], &ALL_OURS));
        assert_eq!((undo.end_replication, undo.data), (false, Data::New));
    }

    #[test]
    fn a_replica_of_someone_else_is_left_replicating_and_only_settings_are_checked() {
        for other in [("10.0.0.5", 41001), ("10.0.0.6", 41000)] {
            let undo = decide(&borrowed(), &observed(Some(other), &[], &ALL_OURS));
            assert!(!undo.end_replication, "{other:?}");
            assert_eq!(undo.put_back.len(), 3);
            assert_eq!(undo.data, Data::Unknown);
        }
        let undo = decide(&borrowed(), &observed(None, &[], &ALL_OURS));
        assert!(!undo.end_replication, "a master is not told REPLICAOF NO ONE");
    }

    #[test]
    fn settings_an_operator_changed_since_are_left_alone() {
        let settings: [(&str, &[u8]); 3] = [
            ("masterauth", b"set-by-the-operator"),
            ("masteruser", b""),
            ("repl-diskless-load", b"on-empty-db"),
        ];
        let undo = decide(&borrowed(), &observed(Some(("10.0.0.5", 41000)), &[], &settings));
        assert!(undo.end_replication);
        assert_eq!(put_back(&undo), [("masteruser", &b""[..])]);
        assert_eq!(undo.left, ["masterauth", "repl-diskless-load"]);
        // A setting the server does not answer for is left too.
        let undo = decide(&borrowed(), &observed(None, &[], &ALL_OURS[..1]));
        assert_eq!(undo.left, ["masteruser", "repl-diskless-load"]);
    }

    #[test]
    fn reads_the_replication_section() {
        let info = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:40123\r\n\
                    master_link_status:down\r\nmaster_replid:abc\r\nmaster_replid2:def\r\n";
        let observed = Observed::read_info(info);
        assert_eq!(observed.master, Some(("127.0.0.1".to_owned(), 40123)));
        assert_eq!(observed.replication_ids, ["abc", "def"]);
        let master = Observed::read_info("# Replication\r\nrole:master\r\nmaster_replid:abc\r\n");
        assert_eq!(master.master, None);
    }
}
