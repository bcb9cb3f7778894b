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

mod connection;
mod info;
mod rdb_stream;
mod replication;
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
use crate::engine::{Engine, Error, PhaseSink, Snapshot};

/// Snapshots Redis (and servers that speak its replication protocol, such as Valkey).
#[derive(Debug, Clone)]
pub struct RedisEngine {
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl Default for RedisEngine {
    /// Ten seconds to connect; a minute of silence from the server fails the snapshot.
    fn default() -> Self {
        RedisEngine { connect_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60) }
    }
}

impl RedisEngine {
    /// How long connecting (TCP and TLS) may take.
    pub fn with_connect_timeout(self, connect_timeout: Duration) -> Self {
        RedisEngine { connect_timeout, ..self }
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
    async fn snapshot(&self, uri: &ConnectionUri, phase: PhaseSink<'_>) -> Result<Snapshot, Error> {
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
            body: Box::pin(body),
        })
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
    if let Framing::Length(length) = framing {
        if length < MAGIC_LEN as u64 {
            return Err(Error::Corrupt(format!(
                "redis at {} sent an rdb of {length} bytes",
                connection.label()
            )));
        }
    }
    let head = connection.peek(MAGIC_LEN).await?;
    rdb_stream::parse_magic(head)
        .map_err(|problem| Error::Corrupt(format!("redis at {} sent no rdb: {problem}", connection.label())))
}
