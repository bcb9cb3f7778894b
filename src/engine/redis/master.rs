//! Loading a verified RDB file by being the target's master for one full sync, so that
//! the target loads it with its own RDB loader, as fast as it loads at start.
//!
//! The target is given a one-time `masterauth` and `repl-diskless-load swapdb` (its old
//! data stays until the new data is loaded whole), then told `REPLICAOF` a listener of
//! ours on the address our control connection comes from. The replica that connects must
//! authenticate with the one-time password; it gets `+FULLRESYNC` and the file as a
//! `$<length>` transfer, or, when its length is not known ahead (a stream rewritten as it
//! is walked, `streamed.rs`), as a `$EOF:<mark>` transfer ended by the mark, which every
//! replica that announces `capa eof` takes. Once the target reports its link up (the load is done), it is
//! told `REPLICAOF NO ONE` and every setting is put back. Keys already expired in the file
//! (a replica keeps them, waiting for its master's deletes) are deleted then.
//!
//! A replica that cannot load what it receives may stop the whole server: only an RDB in
//! a version the target's release is known to read is ever sent, and only bytes that are
//! known good before they go: a file read whole and checked beforehand (CRC64, every
//! value's type), or a backup's bytes proven by their SHA-256 to be the ones checked
//! when it was made, released as a walk passes them (`streamed.rs`); never a live
//! stream. A transfer whose body stops before its length is cut: the replica's load
//! fails short of the end, and with swapdb it keeps its data ([`Attempt::Cut`]).
//!
//! Anything the target refuses before it starts loading (a replica already, a cluster
//! node, `CONFIG` or `REPLICAOF` refused, our address unreachable from it) declines the
//! path with the target as it was, and the caller falls back to `RESTORE` commands. If
//! the job is dropped midway, a background task puts the target back.
//!
//! Before the first setting changes, what is borrowed (the address the target will
//! follow, the settings with their values before) is written to the engine's journal
//! (`borrowed.rs`), and the record removed once they are back: if Cellar dies midway,
//! the next start gives the target back from the record.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use super::borrowed::{self, Borrowed, Setting};
use super::connection::{Connection, Reply, Transport, describe};
use super::info::ServerFacts;
use super::plan::{oldest_redis_reading, redis_release};
use super::restore::Limits;
use super::target::Target;
use crate::engine::Error;
use crate::engine::journal::{DatabaseJournal, RecordFile};
use crate::engine::recover;

/// How often the target is asked whether its load is done: often, since the restore
/// ends only when it is seen done, and an `INFO` costs the target a few microseconds.
const POLL: Duration = Duration::from_millis(10);
/// The file is sent in chunks of this size.
const CHUNK: usize = 1 << 20;
/// Settings changed on the target for the sync, and put back afterwards.
const BORROWED: [&str; 3] = ["masterauth", "masteruser", "repl-diskless-load"];

/// What an attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The target loaded the file.
    Loaded,
    /// The path could not run; the target is as it was. Says why.
    Declined(String),
    /// The body stopped before its end, with this error: the transfer was cut, the
    /// target's load failed short of the end, and it kept its data.
    Cut(Error),
}

/// The bytes a transfer sends.
#[async_trait]
pub(crate) trait Body: Send {
    /// The next bytes: empty only at the end.
    async fn chunk(&mut self) -> Result<Bytes, Error>;

    /// How far into the data the bytes given so far reach, for progress.
    fn position(&self) -> u64;
}

/// A spooled file as a transfer's body.
pub(crate) struct FileBody {
    file: tokio::fs::File,
    read: u64,
}

impl FileBody {
    pub(crate) fn new(file: tokio::fs::File) -> FileBody {
        FileBody { file, read: 0 }
    }
}

#[async_trait]
impl Body for FileBody {
    async fn chunk(&mut self) -> Result<Bytes, Error> {
        let mut chunk = BytesMut::with_capacity(CHUNK);
        while chunk.len() < CHUNK {
            let read = self
                .file
                .read_buf(&mut chunk)
                .await
                .map_err(|error| Error::Unsupported(format!("cannot read the spooled rdb: {error}")))?;
            if read == 0 {
                break;
            }
        }
        self.read += chunk.len() as u64;
        Ok(chunk.freeze())
    }

    fn position(&self) -> u64 {
        self.read
    }
}

/// What a transfer sends: an RDB in `rdb_version`, read from `body`, `size` bytes long
/// when that is known ahead (else framed by an end mark).
pub(crate) struct Transfer<'a> {
    pub(crate) body: &'a mut dyn Body,
    pub(crate) size: Option<u64>,
    pub(crate) rdb_version: u16,
}

/// Has the target at `control` load the RDB of `transfer` as our replica. `progress`
/// gets the bytes sent. Errors only once the target may have started loading.
pub(crate) async fn load(
    control: &mut Connection,
    target: &Target,
    limits: Limits,
    journal: Option<&DatabaseJournal>,
    transfer: Transfer<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Attempt, Error> {
    let rdb_version = transfer.rdb_version;
    if let Some(why) = unsuitable(control, target, rdb_version).await? {
        return Ok(Attempt::Declined(why));
    }
    let Some(local) = control.local_addr() else {
        return Ok(Attempt::Declined("our address as the target sees it is unknown".to_owned()));
    };
    let listener = match TcpListener::bind(SocketAddr::new(local.ip(), 0)).await {
        Ok(listener) => listener,
        Err(error) => return Ok(Attempt::Declined(format!("cannot listen on {}: {error}", local.ip()))),
    };
    let address = listener.local_addr().map_err(|error| Error::Unsupported(error.to_string()))?;
    let password = one_time_password();
    let replication_id = replication_id();

    let borrowing =
        Borrowing { target, limits, master: address, password: &password, replication_id: &replication_id };
    let mut lease = match Lease::take(control, borrowing, journal).await? {
        Ok(lease) => lease,
        Err(why) => return Ok(Attempt::Declined(why)),
    };
    let host = address.ip().to_string();
    let port = address.port().to_string();
    match control.command(&[b"REPLICAOF", host.as_bytes(), port.as_bytes()]).await? {
        Reply::Status(_) => {}
        other => {
            lease.give_back(control).await?;
            return Ok(Attempt::Declined(format!("the target refused REPLICAOF: {}", shown(&other))));
        }
    }

    // The replica's connection stays open until it is told to stop replicating.
    let outcome =
        replicate(control, &listener, &password, &replication_id, limits, transfer, progress).await?;
    if matches!(outcome, Served::Cut(_)) {
        // The replica's load fails at the cut; until it has, it refuses REPLICAOF.
        wait_not_loading(control, limits.idle_timeout).await?;
    }
    lease.give_back(control).await?;
    match outcome {
        Served::Loaded(_link) => Ok(Attempt::Loaded),
        Served::NotReached => Ok(Attempt::Declined(format!(
            "the target did not connect to {address} within {} s",
            limits.connect_timeout.as_secs_f64()
        ))),
        Served::Dropped => Ok(Attempt::Declined(
            "the target dropped the replication link before its load finished (its data was kept)".to_owned(),
        )),
        Served::NoEndMark => Ok(Attempt::Declined(
            "the target's replica does not take a transfer ended by a mark (capa eof)".to_owned(),
        )),
        Served::Cut(error) => Ok(Attempt::Cut(error)),
    }
}

/// Waits until the target is no longer loading (a replica whose transfer was cut stops
/// loading as soon as it reads the end of the connection).
async fn wait_not_loading(control: &mut Connection, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        match control.command(&[b"INFO", b"persistence"]).await? {
            Reply::Bulk(Some(text)) if field(&String::from_utf8_lossy(&text), "loading") != Some("1") => {
                return Ok(());
            }
            Reply::Bulk(Some(_)) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            Reply::Bulk(Some(_)) => {
                return Err(Error::Unreachable(format!(
                    "redis at {} was still loading {} s after its transfer was cut",
                    control.label(),
                    timeout.as_secs()
                )));
            }
            other => {
                return Err(Error::Protocol(format!(
                    "redis at {} answered INFO with {}",
                    control.label(),
                    describe(&other)
                )));
            }
        }
    }
}

/// Why the target cannot take this path, if it cannot.
async fn unsuitable(
    control: &mut Connection,
    target: &Target,
    rdb_version: u16,
) -> Result<Option<String>, Error> {
    if target.tls.is_some() {
        return Ok(Some("the target is reached over TLS".to_owned()));
    }
    let info = match control.command(&[b"INFO", b"all"]).await? {
        Reply::Bulk(Some(text)) => String::from_utf8_lossy(&text).into_owned(),
        other => return Ok(Some(format!("the target answered INFO with {}", shown(&other)))),
    };
    if field(&info, "role") != Some("master") {
        return Ok(Some("the target is a replica".to_owned()));
    }
    if field(&info, "cluster_enabled") == Some("1") {
        return Ok(Some("the target is a cluster node".to_owned()));
    }
    if field(&info, "loading") == Some("1") {
        return Ok(Some("the target is loading data".to_owned()));
    }
    let facts = ServerFacts::parse(&info);
    if !reads(&facts, rdb_version) {
        let server = facts.flavour.or(facts.version.map(|v| format!("redis {v}"))).unwrap_or_default();
        return Ok(Some(format!("{server} is not known to read rdb version {rdb_version}")));
    }
    Ok(None)
}

/// Whether a server is known to read RDB `version`: a replica that cannot read what it
/// is sent may stop, so unknown means no.
fn reads(facts: &ServerFacts, version: u16) -> bool {
    match &facts.flavour {
        None => {
            let release = facts.version.as_deref().and_then(redis_release);
            match (release, oldest_redis_reading(version)) {
                (Some(release), Some(required)) => release >= required,
                (Some(release), None) => version <= 9 && release >= (6, 0),
                (None, _) => false,
            }
        }
        Some(flavour) => {
            let major = flavour
                .strip_prefix("valkey ")
                .and_then(|version| version.split('.').next())
                .and_then(|major| major.parse::<u32>().ok());
            match major {
                Some(major) if major >= 7 => version <= 11 || (version == 80 && major >= 9),
                _ => false,
            }
        }
    }
}

/// `value` of the `name:value` line of an `INFO` text.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(str::trim_end)
}

/// How serving the replica ended.
enum Served {
    /// The target loaded the file; the replica's connection, still open.
    Loaded(Box<dyn Transport>),
    /// Nobody authenticated and asked for a sync in time.
    NotReached,
    /// The replica hung up before its link came up: its load failed.
    Dropped,
    /// The body stopped before its end; the replica's connection was closed.
    Cut(Error),
    /// The transfer needs an end mark, which the replica did not announce it takes.
    NoEndMark,
}

/// Accepts the target's replica connection, sends it the file, and waits until the
/// target says the link is up (its load is done).
async fn replicate(
    control: &mut Connection,
    listener: &TcpListener,
    password: &str,
    replication_id: &str,
    limits: Limits,
    transfer: Transfer<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Served, Error> {
    let Transfer { body, size, .. } = transfer;
    let deadline = Instant::now() + limits.connect_timeout;
    let mut replica = loop {
        let accepted = tokio::time::timeout_at(deadline.into(), listener.accept()).await;
        let Ok(accepted) = accepted else { return Ok(Served::NotReached) };
        let (socket, peer) =
            accepted.map_err(|error| Error::Unreachable(format!("accepting failed: {error}")))?;
        let _ = socket.set_nodelay(true);
        let mut replica = Connection::new(Box::new(socket), peer.to_string(), limits.idle_timeout);
        match handshake(&mut replica, password, replication_id, size.is_none()).await {
            Ok(Handshake::Synced) => break replica,
            Ok(Handshake::Refused) => continue,
            Ok(Handshake::NoEndMark) => return Ok(Served::NoEndMark),
            Err(error) => tracing::debug!(peer = %peer, %error, "replica handshake failed"),
        }
    };

    let mark = self::replication_id();
    match size {
        Some(size) => replica.write_all(format!("${size}\r\n").as_bytes()).await?,
        None => replica.write_all(format!("$EOF:{mark}\r\n").as_bytes()).await?,
    }
    let mut sent = 0;
    loop {
        // Dropping the connection cuts the transfer short of its end.
        let chunk = match body.chunk().await {
            Ok(chunk) => chunk,
            Err(error) => return Ok(Served::Cut(error)),
        };
        if chunk.is_empty() {
            break;
        }
        sent += chunk.len() as u64;
        if let Some(size) = size
            && sent > size
        {
            return Ok(Served::Cut(Error::Corrupt(format!("the rdb is longer than its {size} bytes"))));
        }
        replica.write_all(&chunk).await?;
        progress(body.position());
    }
    match size {
        Some(size) if sent < size => {
            return Ok(Served::Cut(Error::Corrupt(format!(
                "the rdb ended after {sent} of its {size} bytes"
            ))));
        }
        Some(_) => {}
        None => replica.write_all(mark.as_bytes()).await?,
    }

    // The replica now only sends `REPLCONF ACK`s, read and dropped; its hanging up means
    // its load failed.
    let (mut stream, _) = replica.into_parts();
    let mut sink = [0; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut sink) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return Ok(Served::Dropped);
                }
            }
            () = tokio::time::sleep(POLL) => {
                match control.command(&[b"INFO", b"replication"]).await? {
                    Reply::Bulk(Some(text)) if field(&String::from_utf8_lossy(&text), "master_link_status") == Some("up") => {
                        return Ok(Served::Loaded(stream));
                    }
                    Reply::Bulk(Some(_)) => {}
                    other => return Err(Error::Protocol(format!(
                        "redis at {} answered INFO with {}", control.label(), describe(&other)
                    ))),
                }
            }
        }
    }
}

/// How a handshake ended.
enum Handshake {
    /// The replica asked for a sync and `+FULLRESYNC` was sent.
    Synced,
    /// A client that did not authenticate (it is dropped).
    Refused,
    /// The transfer needs an end mark, and the replica did not announce `capa eof`.
    NoEndMark,
}

/// Plays the master's side of the handshake until the replica asks for a sync;
/// `end_mark` when the transfer will be framed by an end mark.
async fn handshake(
    replica: &mut Connection,
    password: &str,
    replication_id: &str,
    end_mark: bool,
) -> Result<Handshake, Error> {
    let mut authenticated = false;
    let mut takes_end_mark = false;
    loop {
        let Reply::Array(Some(parts)) = replica.read_reply().await? else { return Ok(Handshake::Refused) };
        let args: Vec<&[u8]> = parts
            .iter()
            .filter_map(|part| match part {
                Reply::Bulk(Some(bytes)) => Some(bytes.as_ref()),
                _ => None,
            })
            .collect();
        let Some(command) = args.first().map(|name| name.to_ascii_uppercase()) else {
            return Ok(Handshake::Refused);
        };
        match command.as_slice() {
            b"PING" => replica.write_all(b"+PONG\r\n").await?,
            b"AUTH" => {
                authenticated = args.last().is_some_and(|given| same(given, password.as_bytes()));
                if !authenticated {
                    replica.write_all(b"-WRONGPASS invalid password\r\n").await?;
                    return Ok(Handshake::Refused);
                }
                replica.write_all(b"+OK\r\n").await?;
            }
            _ if !authenticated => {
                replica.write_all(b"-NOAUTH Authentication required.\r\n").await?;
                return Ok(Handshake::Refused);
            }
            b"REPLCONF" => {
                // `REPLCONF capa eof capa psync2`: the capabilities, in pairs.
                if args.get(1).is_some_and(|name| name.eq_ignore_ascii_case(b"capa")) {
                    takes_end_mark |= args[1..].chunks(2).any(|pair| pair.get(1) == Some(&&b"eof"[..]));
                }
                replica.write_all(b"+OK\r\n").await?;
            }
            b"PSYNC" | b"SYNC" => {
                if end_mark && !takes_end_mark {
                    replica.write_all(b"-ERR this master sends only transfers ended by a mark\r\n").await?;
                    return Ok(Handshake::NoEndMark);
                }
                if command == b"PSYNC" {
                    let answer = format!("+FULLRESYNC {replication_id} 0\r\n");
                    replica.write_all(answer.as_bytes()).await?;
                }
                return Ok(Handshake::Synced);
            }
            _ => replica.write_all(b"-ERR not a master for that\r\n").await?,
        }
    }
}

/// Compares without stopping at the first difference.
fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0, |diff, (a, b)| diff | (a ^ b)) == 0
}

fn one_time_password() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// 40 fresh hex digits: a replication id, or the end mark of a transfer.
fn replication_id() -> String {
    one_time_password()[..40].to_owned()
}

fn shown(reply: &Reply) -> String {
    match reply {
        Reply::Error(message) => message.clone(),
        other => describe(other).to_owned(),
    }
}

/// The target's settings while it is our replica, recorded in the journal before the
/// first is changed. Dropped without [`Lease::give_back`] (the job was cancelled, or
/// failed mid-way), it gives them back from a background task over a new connection,
/// retried with backoff while the target cannot be reached; a crash leaves the record
/// for the next start.
struct Lease {
    target: Target,
    limits: Limits,
    /// What is borrowed, with the values before; `Debug` hides them.
    borrowed: Borrowed,
    /// The journal record, once written (none without a journal).
    record: Option<RecordFile>,
    given_back: bool,
}

impl Lease {
    /// Reads the settings to borrow, records them, and sets them; `Ok(Err(why))` when the
    /// target refused or the record could not be written (whatever was set already is
    /// put back).
    async fn take(
        control: &mut Connection,
        borrowing: Borrowing<'_>,
        journal: Option<&DatabaseJournal>,
    ) -> Result<Result<Lease, String>, Error> {
        let mut values = Vec::new();
        for name in BORROWED {
            match control.command(&[b"CONFIG", b"GET", name.as_bytes()]).await? {
                Reply::Array(Some(pair)) => match pair.as_slice() {
                    [_, Reply::Bulk(Some(value))] => values.push((name, value.to_vec())),
                    [] => {} // a setting this release does not have
                    _ => return Ok(Err(format!("the target answered CONFIG GET {name} oddly"))),
                },
                other => return Ok(Err(format!("the target refused CONFIG GET: {}", shown(&other)))),
            }
        }
        if !values.iter().any(|(name, _)| *name == "repl-diskless-load") {
            return Ok(Err("the target cannot load a sync in place (repl-diskless-load swapdb)".to_owned()));
        }
        let wanted = |name: &str| -> &[u8] {
            match name {
                "masterauth" => borrowing.password.as_bytes(),
                "repl-diskless-load" => b"swapdb",
                _ => b"",
            }
        };
        let borrowed = Borrowed {
            master_host: borrowing.master.ip().to_string(),
            master_port: borrowing.master.port(),
            replication_id: borrowing.replication_id.to_owned(),
            settings: values.iter().map(|(name, value)| Setting::new(name, value, wanted(name))).collect(),
        };
        let record = match journal {
            Some(journal) => match journal.write(borrowed::KIND, borrowed.to_record()).await {
                Ok(record) => Some(record),
                Err(error) => return Ok(Err(format!("cannot record the settings to borrow: {error}"))),
            },
            None => None,
        };
        let mut lease = Lease {
            target: borrowing.target.clone(),
            limits: borrowing.limits,
            borrowed,
            record,
            given_back: false,
        };
        for (name, _) in values {
            let reply = control.command(&[b"CONFIG", b"SET", name.as_bytes(), wanted(name)]).await?;
            if !matches!(reply, Reply::Status(_)) {
                lease.give_back(control).await?;
                return Ok(Err(format!("the target refused CONFIG SET {name}: {}", shown(&reply))));
            }
        }
        Ok(Ok(lease))
    }

    /// Ends replication and puts every setting back, then removes the record. On
    /// failure, this is tried again in the background over a new connection when the
    /// lease is dropped.
    async fn give_back(&mut self, control: &mut Connection) -> Result<(), Error> {
        borrowed::give_back(control, &self.borrowed).await?;
        self.given_back = true;
        forget(self.record.take()).await;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.given_back {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (target, limits, borrowed) = (self.target.clone(), self.limits, self.borrowed.clone());
        let record = self.record.take();
        runtime.spawn(async move {
            let attempt = || async {
                let mut control = Connection::open(&target, limits.connect_timeout, limits.idle_timeout).await?;
                borrowed::give_back(&mut control, &borrowed).await
            };
            let retrying = |attempt: u32, wait: std::time::Duration, error: &Error| {
                tracing::warn!(redis = %target.label, attempt, retry_in_s = wait.as_secs(), %error, "cannot yet give back the target of a stopped load by replication");
            };
            match recover::with_backoff(recover::Backoff::DEFAULT, attempt, retrying).await {
                Ok(undo) => {
                    tracing::info!(redis = %target.label, data = undo.data.describe(), "a stopped load by replication gave its target back");
                    forget(record).await;
                }
                Err(error) => tracing::warn!(
                    redis = %target.label,
                    %error,
                    record = ?record.as_ref().map(RecordFile::path),
                    "could not end replication on a stopped load"
                ),
            }
        });
    }
}

/// Removes a journal record whose settings are back; a record that stays is harmless:
/// the next start finds nothing of ours on the target and removes it.
async fn forget(record: Option<RecordFile>) {
    if let Some(record) = record
        && let Err(error) = record.remove().await
    {
        tracing::warn!(%error, "cannot remove a journal record");
    }
}

/// What a load borrows the target for.
struct Borrowing<'a> {
    target: &'a Target,
    limits: Limits,
    /// Where the target is told to replicate from.
    master: SocketAddr,
    /// The one-time `masterauth`.
    password: &'a str,
    /// The replication id `+FULLRESYNC` gives.
    replication_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version: &str, flavour: Option<&str>) -> ServerFacts {
        ServerFacts {
            version: Some(version.into()),
            flavour: flavour.map(Into::into),
            ..ServerFacts::default()
        }
    }

    #[test]
    fn sends_only_what_the_target_is_known_to_read() {
        assert!(reads(&facts("7.0.15", None), 10));
        assert!(reads(&facts("7.0.15", None), 9));
        assert!(!reads(&facts("7.0.15", None), 11));
        assert!(!reads(&facts("6.2.14", None), 10));
        assert!(reads(&facts("7.4.1", None), 12));
        assert!(!reads(&facts("7.4.1", None), 80));
        assert!(reads(&facts("7.2.4", Some("valkey 8.0.1")), 11));
        assert!(!reads(&facts("7.2.4", Some("valkey 8.0.1")), 80));
        assert!(reads(&facts("7.2.4", Some("valkey 9.1.2")), 80));
        assert!(!reads(&facts("7.2.4", Some("keydb 6.3.4")), 9));
        assert!(!reads(&facts("7.0.15", None), 13));
    }

    #[test]
    fn reads_info_fields() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_link_status:up\r\n";
        assert_eq!(field(info, "role"), Some("master"));
        assert_eq!(field(info, "master_link_status"), Some("up"));
        assert_eq!(field(info, "master"), None);
    }

    /// Plays a replica that sends `commands` to our handshake, which expects a
    /// transfer framed by an end mark when `end_mark`; returns how it ended and what
    /// the replica was answered.
    async fn handshake_with(commands: &[&[&str]], end_mark: bool) -> (Handshake, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (ours, mut theirs) = tokio::io::duplex(1 << 16);
        for command in commands {
            let parts: Vec<&[u8]> = command.iter().map(|part| part.as_bytes()).collect();
            theirs.write_all(&super::super::connection::encode_command(&parts)).await.unwrap();
        }
        let mut replica = Connection::new(Box::new(ours), "replica".into(), Duration::from_secs(5));
        let ended = handshake(&mut replica, "pw", &"a".repeat(40), end_mark).await.unwrap();
        drop(replica);
        let mut answered = String::new();
        theirs.read_to_string(&mut answered).await.unwrap();
        (ended, answered)
    }

    #[tokio::test]
    async fn a_transfer_ended_by_a_mark_goes_only_to_a_replica_that_takes_one() {
        let auth: &[&str] = &["AUTH", "pw"];
        let port: &[&str] = &["REPLCONF", "listening-port", "6380"];
        let psync: &[&str] = &["PSYNC", "?", "-1"];
        let with_eof: &[&str] = &["REPLCONF", "capa", "eof", "capa", "psync2"];
        let without_eof: &[&str] = &["REPLCONF", "capa", "psync2"];

        let (ended, answered) = handshake_with(&[auth, port, with_eof, psync], true).await;
        assert!(matches!(ended, Handshake::Synced), "{answered}");
        assert!(answered.ends_with(&format!("+FULLRESYNC {} 0\r\n", "a".repeat(40))), "{answered}");

        let (ended, answered) = handshake_with(&[auth, port, without_eof, psync], true).await;
        assert!(matches!(ended, Handshake::NoEndMark), "{answered}");
        assert!(
            answered.ends_with("-ERR this master sends only transfers ended by a mark\r\n"),
            "{answered}"
        );

        // A transfer of a known length goes to either.
        let (ended, _) = handshake_with(&[auth, without_eof, psync], false).await;
        assert!(matches!(ended, Handshake::Synced));
        let (ended, answered) = handshake_with(&[&["AUTH", "wrong"], psync], false).await;
        assert!(matches!(ended, Handshake::Refused), "{answered}");
    }

    #[test]
    fn compares_passwords_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abd", b"abc"));
        assert!(!same(b"ab", b"abc"));
        assert_eq!(replication_id().len(), 40);
        assert_ne!(one_time_password(), one_time_password());
    }
}
