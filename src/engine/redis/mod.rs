//! The Redis engine: a snapshot is a full sync over the replication protocol, taken the
//! way `redis-cli --rdb` takes it, and streamed as the RDB file the server sends.
//!
//! The connection URI is `redis://[user[:password]@]host[:port][/db]`, or `rediss://`
//! for TLS. User and password are percent-decoded and sent with `AUTH` (a password
//! alone authenticates the `default` user). The db index is ignored: a snapshot holds
//! every database. TLS checks the server's certificate against the system's trust roots
//! (`SSL_CERT_FILE` or `SSL_CERT_DIR` point at others, e.g. a private CA); the URI option
//! `insecure=true` (or `tls_insecure=true`) skips that check, for self-signed test
//! servers only. Client certificates are not supported.
//!
//! The user needs `INFO`, `REPLCONF` and `SYNC`. A snapshot reads `INFO`, announces
//! `REPLCONF rdb-only 1` and `REPLCONF capa eof` (older servers may refuse either), and
//! sends `SYNC`. The master then saves an RDB to disk and sends it with its length, or
//! (with `repl-diskless-sync yes`) streams it as it is produced, followed by an end mark.
//! A cluster node's snapshot holds that node's slots only.
//!
//! A load (`restore.rs`) reads the RDB whole, then replaces the target's data with
//! `RESTORE` payloads, or, for a Redis older than the data, with commands rebuilding
//! every key (and says so in [`Loaded::warnings`](crate::engine::Loaded)).

mod borrowed;
mod check;
mod connection;
mod crc64;
mod duplicates;
mod info;
mod loader;
mod master;
mod plan;
pub mod rdb;
mod rdb_stream;
mod replication;
mod restore;
mod source;
mod streamed;
mod target;
mod tls;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;

use self::connection::{Connection, Reply, describe, refusal};
use self::info::ServerFacts;
use self::rdb_stream::{MAGIC_LEN, RdbStream};
use self::replication::Framing;
use self::target::Target;
use crate::domain::{ConnectionUri, EngineKind};
use crate::engine::journal::DatabaseJournal;
use crate::engine::{CheckedFile, Engine, Error, LoadData, Loaded, PhaseSink, ProgressSink, Snapshot};

/// Snapshots Redis (and servers that speak its replication protocol, such as Valkey).
#[derive(Debug, Clone)]
pub struct RedisEngine {
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_payload: usize,
    load_method: LoadMethod,
    journal: Option<DatabaseJournal>,
}

pub use self::restore::LoadMethod;

impl Default for RedisEngine {
    /// Ten seconds to connect; a minute of silence from the server fails the snapshot.
    fn default() -> Self {
        RedisEngine {
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_payload: rdb::DEFAULT_MAX_PAYLOAD,
            load_method: LoadMethod::Auto,
            journal: None,
        }
    }
}

impl RedisEngine {
    /// How long connecting (TCP and TLS) may take.
    pub fn with_connect_timeout(self, connect_timeout: Duration) -> Self {
        RedisEngine { connect_timeout, ..self }
    }

    /// The largest value loaded with one `RESTORE`; bigger lists, sets, sorted sets,
    /// hashes and strings are sent in batches of elements, so memory stays bounded.
    pub fn with_max_payload(self, max_payload: usize) -> Self {
        RedisEngine { max_payload, ..self }
    }

    /// How loads go in: by replication where the target takes it (the default), always
    /// as `RESTORE` commands, or only by replication.
    pub fn with_load_method(self, load_method: LoadMethod) -> Self {
        RedisEngine { load_method, ..self }
    }

    /// Where a load by replication records what it borrows from the target before it
    /// changes anything, so that the next start can give it back after a crash; without
    /// a journal nothing is recorded.
    pub fn with_journal(self, journal: DatabaseJournal) -> Self {
        RedisEngine { journal: Some(journal), ..self }
    }

    /// How long the server may send nothing while we wait for it: a reply, the start of
    /// the transfer (a master saving its RDB sends a keepalive every second), or the
    /// next bytes of the RDB.
    pub fn with_idle_timeout(self, idle_timeout: Duration) -> Self {
        RedisEngine { idle_timeout, ..self }
    }
}

#[async_trait]
impl Engine for RedisEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Redis
    }

    /// Phases: `connecting`, `snapshotting` (the master produces the RDB), `streaming`.
    /// Returns once the transfer has started and the RDB header checked; the body is the
    /// RDB file. `bytes_total` is exact when the master saved to disk first, and an
    /// estimate (the dataset's memory) for a diskless transfer. Nothing runs in the
    /// background: dropping the future or the body closes the connection.
    async fn snapshot(
        &self,
        uri: &ConnectionUri,
        database: Option<&str>,
        phase: PhaseSink<'_>,
    ) -> Result<Snapshot, Error> {
        no_logical_database(database)?;
        phase("connecting");
        let target = Target::from_uri(uri)?;
        let mut connection = Connection::open(&target, self.connect_timeout, self.idle_timeout).await?;
        let facts = server_facts(&mut connection).await?;
        let framing = replication::start_full_sync(&mut connection, phase).await?;
        let version = rdb_version(&mut connection, framing).await?;
        phase("streaming");

        let label = connection.label().to_owned();
        let (stream, received) = connection.into_parts();
        let source = Cursor::new(received).chain(stream);
        let body = RdbStream::new(source, framing, version, label, self.idle_timeout);
        let (bytes_total, bytes_total_exact, transfer) = match framing {
            Framing::Length(length) => (Some(length), true, "disk"),
            Framing::Mark(_) => (facts.dataset_bytes, false, "diskless"),
        };
        let mut details = BTreeMap::from([("transfer".to_owned(), transfer.to_owned())]);
        if let Some(flavour) = facts.flavour {
            details.insert("server".to_owned(), flavour);
        }
        Ok(Snapshot {
            server_version: facts.version.unwrap_or_else(|| "unknown".to_owned()),
            format: "rdb",
            format_version: version.to_string(),
            bytes_total,
            bytes_total_exact,
            items_total: Some(facts.keys),
            details,
            items_done: None,
            produced_here: false,
            body: Box::pin(body),
        })
    }

    /// Phases: `verifying` (the whole file is read once; a stream is spooled and read by
    /// the check in one pass, in the caller's phase), `connecting`, `verifying` again
    /// when a Redis older than the data gets every key decoded, then `replicating` (the
    /// target loads the file as our replica) or `loading` (keys sent as commands after a
    /// flush).
    async fn load(
        &self,
        uri: &ConnectionUri,
        database: Option<&str>,
        data: LoadData<'_>,
        phase: PhaseSink<'_>,
        progress: ProgressSink<'_>,
    ) -> Result<Loaded, Error> {
        no_logical_database(database)?;
        let target = Target::from_uri(uri)?;
        let limits = restore::Limits {
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            max_payload: self.max_payload,
        };
        restore::load(&target, limits, self.load_method, self.journal.as_ref(), data, phase, progress).await
    }

    /// A checked stream goes to the target by replication as it is read; sent as
    /// `RESTORE` commands, it is checked whole as it is read, then read again from the
    /// proven copy rather than spooled decompressed (`source.rs`).
    fn prefers_checked_stream(&self) -> bool {
        true
    }

    /// Reads the RDB file whole as a load's check does: every key walked (big keys
    /// decoded), the CRC64 trailer matched.
    async fn check_file(&self, path: &std::path::Path) -> Result<CheckedFile, Error> {
        check::check_file(path, self.max_payload).await
    }
}

/// The journal kind of a load by replication's records.
pub(crate) const BORROWED_KIND: &str = borrowed::KIND;

/// Gives back what a load by replication that stopped midway (a crash) borrowed from the
/// server at `uri`, from its journal `record` (`borrowed.rs`).
pub(crate) async fn give_back_left(
    uri: &ConnectionUri,
    record: serde_json::Value,
) -> Result<crate::engine::recover::GivenBack, Error> {
    let engine = RedisEngine::default();
    let limits = restore::Limits {
        connect_timeout: engine.connect_timeout,
        idle_timeout: engine.idle_timeout,
        max_payload: engine.max_payload,
    };
    let undo = borrowed::give_back_left(uri, record, limits).await?;
    Ok(crate::engine::recover::GivenBack {
        replication_ended: undo.end_replication,
        put_back: undo.put_back.into_iter().map(|(name, _)| name).collect(),
        left: undo.left,
        data: undo.data.describe(),
    })
}

/// Redis has numbered databases, all in one snapshot: a logical database name is a
/// caller's mistake (the service refuses it first).
fn no_logical_database(database: Option<&str>) -> Result<(), Error> {
    match database {
        Some(name) if !name.is_empty() => Err(Error::Unsupported(format!(
            "redis has no named databases ('{name}'): a snapshot holds every numbered database"
        ))),
        _ => Ok(()),
    }
}

/// Reads `INFO` (every default section: server, memory, keyspace).
async fn server_facts(connection: &mut Connection) -> Result<ServerFacts, Error> {
    match connection.command(&[b"INFO"]).await? {
        Reply::Bulk(Some(text)) => Ok(ServerFacts::parse(&String::from_utf8_lossy(&text))),
        Reply::Error(message) => Err(refusal(connection.label(), "INFO", &message)),
        other => Err(Error::Protocol(format!(
            "redis at {} answered INFO with {}",
            connection.label(),
            describe(&other)
        ))),
    }
}

/// Waits for the RDB's magic and reads its version, leaving the bytes in the buffer.
async fn rdb_version(connection: &mut Connection, framing: Framing) -> Result<u32, Error> {
    if let Framing::Length(length) = framing
        && length < MAGIC_LEN as u64
    {
        return Err(Error::Corrupt(format!("redis at {} sent an rdb of {length} bytes", connection.label())));
    }
    let head = connection.peek(MAGIC_LEN).await?;
    rdb_stream::parse_magic(head)
        .map_err(|problem| Error::Corrupt(format!("redis at {} sent no rdb: {problem}", connection.label())))
}

#[cfg(test)]
mod unit_tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    const MARK: &[u8; 40] = b"0123456789abcdef0123456789abcdef01234567";

    /// Plays a master on a free port: whatever the client sends, it answers `script`
    /// (INFO, the two REPLCONFs, then the transfer), and stays connected until the
    /// client hangs up.
    async fn fake_master(script: Vec<u8>) -> ConnectionUri {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(&script).await.unwrap();
            let mut sink = Vec::new();
            let _ = socket.read_to_end(&mut sink).await;
        });
        ConnectionUri::parse(&format!("redis://127.0.0.1:{port}/2")).unwrap()
    }

    /// The replies to INFO and the REPLCONFs, then `transfer` after keepalives.
    fn script(transfer: &[u8]) -> Vec<u8> {
        let info = "# Server\r\nredis_version:7.2.4\r\n# Memory\r\nused_memory_dataset:5000\r\n\
                    # Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n";
        let replies = format!("${}\r\n{info}\r\n+OK\r\n+OK\r\n\n\n", info.len());
        [replies.as_bytes(), transfer].concat()
    }

    fn small_rdb() -> Vec<u8> {
        let mut rdb = b"REDIS0011\xfe\x00\x00\x01k\x01v\xff".to_vec();
        let checksum = super::crc64::CRC64.checksum(&rdb);
        rdb.extend_from_slice(&checksum.to_le_bytes());
        rdb
    }

    async fn snapshot(uri: &ConnectionUri) -> Result<Snapshot, Error> {
        RedisEngine::default().snapshot(uri, None, &|_| {}).await
    }

    #[tokio::test]
    async fn a_diskless_transfer_is_estimated_and_stripped_of_its_mark() {
        let rdb = small_rdb();
        let transfer = [&b"$EOF:"[..], MARK, b"\r\n", &rdb, MARK].concat();
        let mut snapshot = snapshot(&fake_master(script(&transfer)).await).await.unwrap();
        assert_eq!(snapshot.server_version, "7.2.4");
        assert_eq!(snapshot.format_version, "11");
        assert_eq!((snapshot.bytes_total, snapshot.bytes_total_exact), (Some(5000), false));
        assert_eq!(snapshot.items_total, Some(2));
        assert_eq!(snapshot.details.get("transfer").map(String::as_str), Some("diskless"));
        let mut body = Vec::new();
        snapshot.body.read_to_end(&mut body).await.unwrap();
        assert_eq!(body, rdb);
    }

    #[tokio::test]
    async fn a_disk_transfer_has_an_exact_size() {
        let rdb = small_rdb();
        let transfer = [format!("${}\r\n", rdb.len()).as_bytes(), &rdb, b"*1\r\n$4\r\nPING\r\n"].concat();
        let mut snapshot = snapshot(&fake_master(script(&transfer)).await).await.unwrap();
        assert_eq!((snapshot.bytes_total, snapshot.bytes_total_exact), (Some(rdb.len() as u64), true));
        let mut body = Vec::new();
        snapshot.body.read_to_end(&mut body).await.unwrap();
        assert_eq!(body, rdb);
    }

    #[tokio::test]
    async fn anything_but_an_rdb_is_corrupt() {
        let uri = fake_master(script(b"$30\r\nNOTANRDB!.....................")).await;
        let error = snapshot(&uri).await.unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
        assert!(
            error.to_string().ends_with("sent no rdb: the data starts with \"NOTANRDB!\", not an rdb header"),
            "{error}"
        );

        let error = snapshot(&fake_master(script(b"$5\r\nREDIS")).await).await.unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    }

    #[test]
    fn redis_is_registered() {
        let engine = crate::engine::for_kind(EngineKind::Redis, &crate::engine::Settings::default()).unwrap();
        assert_eq!(engine.kind(), EngineKind::Redis);
    }
}
