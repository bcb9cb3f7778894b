//! Loading keys into a Redis server: `RESTORE key ttl payload REPLACE ABSTTL` (or any
//! other command, for keys rebuilt from their elements), pipelined with a bounded window
//! so that the server is never idle and memory never grows. Plain strings go many to
//! one `MSET`: the server spends most of a small key's time on running a command, so
//! this takes a third or more off loading a data set of mostly strings.
//!
//! The loader writes commands into one buffer and sends it when it is large enough or when
//! the window is full; replies are matched to keys in order. Strings wait in a batch of
//! their own, which goes out before any other command, so that commands keep their
//! order (a later key of the same name still wins). A refusal ends the load with
//! an error naming the key: a payload the target cannot read because it comes from a
//! newer server is [`Error::TargetTooOld`], a payload it finds malformed is
//! [`Error::Corrupt`].

use std::collections::VecDeque;

use super::connection::{
    Connection, Reply, describe, encode_command_into, push_array_header, push_bulk_header, refusal,
};
use crate::engine::Error;

/// Commands in flight at most, by default.
pub(crate) const DEFAULT_WINDOW: usize = 512;
/// Bytes of commands buffered before they are sent.
const SEND_BUFFER: usize = 256 * 1024;
/// The longest key shown in a message.
const KEY_IN_MESSAGE: usize = 64;
/// Strings in one `MSET`, at most.
const MSET_KEYS: usize = 1024;
/// Bytes of keys and values in one `MSET`, at most (one bigger string may go alone).
const MSET_BYTES: usize = 256 * 1024;

/// A pipelined RESTORE stream into one server.
pub(crate) struct Loader {
    connection: Connection,
    window: usize,
    /// Encoded commands not sent yet.
    outgoing: Vec<u8>,
    /// What each command in flight was, oldest first, for matching replies.
    pending: VecDeque<Pending>,
    /// The logical database commands go to; `None` until the first SELECT.
    selected: Option<u64>,
    /// Strings waiting to go as one `MSET` to the selected database.
    strings: Strings,
    restored: u64,
}

/// An `MSET` being put together: its keys and values, encoded.
#[derive(Default)]
struct Strings {
    /// `$len\r\nkey\r\n$len\r\nvalue\r\n`, for each string.
    encoded: Vec<u8>,
    keys: u64,
    /// The first key, for messages.
    first: Vec<u8>,
}

enum Pending {
    Select(u64),
    Flush,
    Restore(Vec<u8>),
    /// An `MSET` of `keys` strings, from `first` on.
    Strings {
        keys: u64,
        first: Vec<u8>,
    },
    /// Any other command, named for messages (`RPUSH of key 'k'`).
    Command(String),
}

impl Loader {
    /// A loader over an open connection with at most `window` commands in flight.
    pub(crate) fn new(connection: Connection, window: usize) -> Loader {
        Loader {
            connection,
            window: window.max(1),
            outgoing: Vec::with_capacity(SEND_BUFFER),
            pending: VecDeque::new(),
            selected: None,
            strings: Strings::default(),
            restored: 0,
        }
    }

    /// Removes every key of every logical database (`FLUSHALL`), in order with the
    /// commands around it.
    pub(crate) async fn flush_all(&mut self) -> Result<(), Error> {
        self.queue(&[b"FLUSHALL"], Pending::Flush).await
    }

    /// Restores one key into logical database `db`, replacing any key of that name.
    /// `expire_at_ms` is the absolute expiry in Unix milliseconds; `payload` is in `DUMP`
    /// format (value encoding, RDB version, CRC64).
    pub(crate) async fn restore(
        &mut self,
        db: u64,
        key: &[u8],
        expire_at_ms: Option<i64>,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.select(db).await?;
        let ttl = expire_at_ms.unwrap_or(0).max(0).to_string();
        let command: [&[u8]; 6] = [b"RESTORE", key, ttl.as_bytes(), payload, b"REPLACE", b"ABSTTL"];
        self.queue(&command, Pending::Restore(key[..key.len().min(KEY_IN_MESSAGE)].to_vec())).await
    }

    /// Sets key `key` of logical database `db` to the string `value`, replacing any key
    /// of that name: batched with the strings around it into one `MSET`.
    pub(crate) async fn set(&mut self, db: u64, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.select(db).await?;
        let strings = &mut self.strings;
        if strings.keys == 0 {
            strings.first = key[..key.len().min(KEY_IN_MESSAGE)].to_vec();
        }
        push_bulk_header(&mut strings.encoded, key.len());
        strings.encoded.extend_from_slice(key);
        strings.encoded.extend_from_slice(b"\r\n");
        push_bulk_header(&mut strings.encoded, value.len());
        strings.encoded.extend_from_slice(value);
        strings.encoded.extend_from_slice(b"\r\n");
        strings.keys += 1;
        if strings.keys as usize >= MSET_KEYS || strings.encoded.len() >= MSET_BYTES {
            self.send_strings().await?;
        }
        Ok(())
    }

    /// Sends any other command to logical database `db`; `what` names it in messages.
    pub(crate) async fn command(&mut self, db: u64, args: &[&[u8]], what: String) -> Result<(), Error> {
        self.select(db).await?;
        self.queue(args, Pending::Command(what)).await
    }

    /// Counts a key loaded by commands other than RESTORE (a big key's batches).
    pub(crate) fn count_key(&mut self) {
        self.restored += 1;
    }

    async fn select(&mut self, db: u64) -> Result<(), Error> {
        if self.selected != Some(db) {
            let db_text = db.to_string();
            self.queue(&[b"SELECT", db_text.as_bytes()], Pending::Select(db)).await?;
            self.selected = Some(db);
        }
        Ok(())
    }

    /// Sends what is buffered and waits for every reply; returns the number of keys
    /// restored.
    pub(crate) async fn finish(mut self) -> Result<u64, Error> {
        self.send_strings().await?;
        self.send_buffered().await?;
        while !self.pending.is_empty() {
            self.read_one().await?;
        }
        Ok(self.restored)
    }

    /// Keys restored so far (acknowledged by the server).
    pub(crate) fn restored(&self) -> u64 {
        self.restored
    }

    async fn queue(&mut self, command: &[&[u8]], pending: Pending) -> Result<(), Error> {
        self.send_strings().await?;
        if command.iter().map(|arg| arg.len()).sum::<usize>() >= SEND_BUFFER {
            self.send_buffered().await?;
            self.write_unbuffered(command).await?;
        } else {
            encode_command_into(&mut self.outgoing, command);
        }
        self.queued(pending).await
    }

    /// Queues the strings waiting, if any, as one `MSET`.
    async fn send_strings(&mut self) -> Result<(), Error> {
        if self.strings.keys == 0 {
            return Ok(());
        }
        let Strings { encoded, keys, first } = &mut self.strings;
        push_array_header(&mut self.outgoing, 1 + 2 * *keys as usize);
        push_bulk_header(&mut self.outgoing, 4);
        self.outgoing.extend_from_slice(b"MSET\r\n");
        self.outgoing.extend_from_slice(encoded);
        encoded.clear();
        let pending = Pending::Strings { keys: std::mem::take(keys), first: std::mem::take(first) };
        self.queued(pending).await
    }

    /// Notes a command just encoded, then keeps the buffer and the window in bounds.
    async fn queued(&mut self, pending: Pending) -> Result<(), Error> {
        self.pending.push_back(pending);
        if self.outgoing.len() >= SEND_BUFFER || self.pending.len() >= self.window {
            self.send_buffered().await?;
        }
        // Keep the window: read replies until half of it is free again, so that reading
        // and sending alternate in large batches.
        if self.pending.len() >= self.window {
            while self.pending.len() > self.window / 2 {
                self.read_one().await?;
            }
        }
        Ok(())
    }

    /// Writes a big command straight to the connection: its big arguments (payloads of
    /// up to the payload limit) are not copied into the send buffer first.
    async fn write_unbuffered(&mut self, command: &[&[u8]]) -> Result<(), Error> {
        let mut framing = Vec::with_capacity(64);
        push_array_header(&mut framing, command.len());
        for arg in command {
            push_bulk_header(&mut framing, arg.len());
            if arg.len() >= SEND_BUFFER / 4 {
                self.connection.write_all(&framing).await?;
                self.connection.write_all(arg).await?;
                framing.clear();
            } else {
                framing.extend_from_slice(arg);
            }
            framing.extend_from_slice(b"\r\n");
        }
        self.connection.write_all(&framing).await
    }

    async fn send_buffered(&mut self) -> Result<(), Error> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        self.connection.write_all(&self.outgoing).await?;
        self.outgoing.clear();
        Ok(())
    }

    async fn read_one(&mut self) -> Result<(), Error> {
        let reply = self.connection.read_reply().await?;
        let Some(pending) = self.pending.pop_front() else {
            return Err(Error::Protocol(format!(
                "redis at {} sent a reply nobody asked for",
                self.connection.label()
            )));
        };
        match (pending, reply) {
            (Pending::Restore(_), Reply::Status(_)) => {
                self.restored += 1;
                Ok(())
            }
            (Pending::Strings { keys, .. }, Reply::Status(_)) => {
                self.restored += keys;
                Ok(())
            }
            (Pending::Select(_) | Pending::Flush, Reply::Status(_)) => Ok(()),
            // XADD answers an id, XCLAIM and HPEXPIREAT arrays, FUNCTION LOAD a name.
            (
                Pending::Command(_),
                Reply::Status(_) | Reply::Integer(_) | Reply::Bulk(_) | Reply::Array(_),
            ) => Ok(()),
            (Pending::Command(what), Reply::Error(message)) => {
                Err(refusal(self.connection.label(), &what, &message))
            }
            (Pending::Restore(key), Reply::Error(message)) => {
                Err(restore_refused(self.connection.label(), &key, &message))
            }
            (Pending::Strings { keys, first }, Reply::Error(message)) => {
                let what = format!("MSET of {keys} keys from '{}'", String::from_utf8_lossy(&first));
                Err(refusal(self.connection.label(), &what, &message))
            }
            (Pending::Select(db), Reply::Error(message)) => {
                Err(refusal(self.connection.label(), &format!("SELECT {db}"), &message))
            }
            (Pending::Flush, Reply::Error(message)) => {
                Err(refusal(self.connection.label(), "FLUSHALL", &message))
            }
            (_, other) => Err(Error::Protocol(format!(
                "redis at {} answered a load command with {}",
                self.connection.label(),
                describe(&other)
            ))),
        }
    }
}

// What a RESTORE refusal means: the payload's RDB version is newer than the target
// reads (the checksum is ours, so "version or checksum" means the version), the payload
// is malformed, or something else the server says.
fn restore_refused(label: &str, key: &[u8], message: &str) -> Error {
    let key = String::from_utf8_lossy(key);
    if message.contains("payload version or checksum are wrong") {
        return Error::TargetTooOld(format!(
            "redis at {label} cannot read key '{key}': its format is newer than the server ({message})"
        ));
    }
    if message.contains("Bad data format") {
        return Error::Corrupt(format!("redis at {label} refused key '{key}' as malformed ({message})"));
    }
    refusal(label, &format!("RESTORE of key '{key}'"), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified() {
        let too_old = restore_refused("h:1", b"k", "ERR DUMP payload version or checksum are wrong");
        assert!(
            matches!(too_old, Error::TargetTooOld(ref message) if message.contains("'k'")),
            "{too_old:?}"
        );
        let corrupt = restore_refused("h:1", b"k", "ERR Bad data format");
        assert!(matches!(corrupt, Error::Corrupt(_)), "{corrupt:?}");
        let denied =
            restore_refused("h:1", b"k", "NOPERM this user has no permissions to run the 'restore' command");
        assert!(matches!(denied, Error::AuthFailed(_)), "{denied:?}");
    }
}
