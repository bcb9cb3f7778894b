//! The replica's side of a full sync, as `redis-cli --rdb` does it: announce the
//! capabilities, send `SYNC`, wait out the keepalives, and read the transfer header.

use super::connection::{Connection, Reply, refusal};
use crate::engine::{Error, PhaseSink};

/// The length of the random mark that ends a diskless transfer.
pub(crate) const MARK_LEN: usize = 40;

/// How the master delimits the RDB it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `$<length>`: the RDB is exactly this long (the master saved it to disk first).
    Length(u64),
    /// `$EOF:<mark>`: the RDB is streamed as it is produced and followed by the mark.
    Mark([u8; MARK_LEN]),
}

/// Asks for a full sync and waits for the transfer to start; returns how the RDB that
/// follows on `connection` is delimited. Reports `snapshotting` while the master
/// produces the RDB.
pub(crate) async fn start_full_sync(
    connection: &mut Connection,
    phase: PhaseSink<'_>,
) -> Result<Framing, Error> {
    // `rdb-only`: no replication stream after the RDB (Redis 7.0+). `capa eof`: we can
    // take a diskless transfer. Older servers refuse what they do not know; the sync
    // works without it, so refusals are only logged.
    for option in [&[&b"REPLCONF"[..], b"rdb-only", b"1"], &[b"REPLCONF", b"capa", b"eof"]] {
        if let Reply::Error(message) = connection.command(option).await? {
            let option = String::from_utf8_lossy(option[1]);
            tracing::debug!(redis = connection.label(), %option, %message, "replconf refused");
        }
    }
    // `SYNC` rather than `PSYNC`: the master then expects no `REPLCONF ACK` from us.
    connection.send(&[b"SYNC"]).await?;
    phase("snapshotting");
    loop {
        let line = connection.read_line().await?;
        match line.first() {
            // While it saves, the master sends a bare newline every second or so.
            None => continue,
            // `+FULLRESYNC <replid> <offset>` should `PSYNC` ever be used.
            Some(b'+') => continue,
            Some(b'-') => {
                return Err(refusal(connection.label(), "SYNC", &String::from_utf8_lossy(&line[1..])));
            }
            Some(_) => {
                return parse_transfer_header(&line).map_err(|problem| {
                    Error::Protocol(format!("redis at {} answered SYNC with {problem}", connection.label()))
                });
            }
        }
    }
}

/// Reads `$<length>` or `$EOF:<40-byte mark>` (without the line end).
pub(crate) fn parse_transfer_header(line: &[u8]) -> Result<Framing, String> {
    let shown = || format!("{:?}", String::from_utf8_lossy(&line[..line.len().min(64)]));
    let Some(rest) = line.strip_prefix(b"$") else {
        return Err(format!("{}, not a transfer header", shown()));
    };
    if let Some(mark) = rest.strip_prefix(b"EOF:") {
        return mark
            .try_into()
            .map(Framing::Mark)
            .map_err(|_| format!("an end mark of {} bytes, not {MARK_LEN}", mark.len()));
    }
    std::str::from_utf8(rest)
        .ok()
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .map(Framing::Length)
        .ok_or_else(|| format!("{}, not a transfer length", shown()))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const MARK: &[u8; MARK_LEN] = b"0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn reads_both_transfer_headers() {
        assert_eq!(parse_transfer_header(b"$175"), Ok(Framing::Length(175)));
        assert_eq!(parse_transfer_header(b"$0"), Ok(Framing::Length(0)));
        assert_eq!(parse_transfer_header(&[b"$EOF:", &MARK[..]].concat()), Ok(Framing::Mark(*MARK)));
    }

    #[test]
    fn rejects_other_headers() {
        for line in [&b"$"[..], b"$-1", b"$12a", b"$ 12", b"175", b"$EOF:short", b"$99999999999999999999999"]
        {
            assert!(parse_transfer_header(line).is_err(), "{:?}", String::from_utf8_lossy(line));
        }
        assert_eq!(parse_transfer_header(b"$EOF:abc").unwrap_err(), "an end mark of 3 bytes, not 40");
    }

    /// Plays a master that answers with `script`: the two REPLCONF replies, then
    /// whatever follows SYNC. Returns the result and the phases reported.
    async fn sync_against(script: &'static [u8]) -> (Result<Framing, Error>, Vec<&'static str>) {
        let (client, mut server) = tokio::io::duplex(4096);
        server.write_all(script).await.unwrap();
        let phases = Mutex::new(Vec::new());
        let record = |phase: &'static str| phases.lock().unwrap().push(phase);
        let mut connection = Connection::new(Box::new(client), "h:6379".into(), Duration::from_secs(5));
        let result = start_full_sync(&mut connection, &record).await;
        let mut sent = vec![0; 4096];
        let count = server.read(&mut sent).await.unwrap();
        let sent = &sent[..count];
        assert!(sent.ends_with(b"*1\r\n$4\r\nSYNC\r\n"), "{:?}", String::from_utf8_lossy(sent));
        (result, phases.into_inner().unwrap())
    }

    #[tokio::test]
    async fn skips_keepalives_and_reads_the_header() {
        let (result, phases) = sync_against(b"+OK\r\n+OK\r\n\n\n\n$1234\r\nREDIS").await;
        assert_eq!(result.unwrap(), Framing::Length(1234));
        assert_eq!(phases, ["snapshotting"]);
    }

    #[tokio::test]
    async fn older_servers_may_refuse_replconf() {
        let script = b"-ERR Unrecognized REPLCONF option: rdb-only\r\n+OK\r\n\
            +FULLRESYNC x 0\r\n\n$EOF:0123456789abcdef0123456789abcdef01234567\r\n";
        let (result, _) = sync_against(script).await;
        assert_eq!(result.unwrap(), Framing::Mark(*MARK));
    }

    #[tokio::test]
    async fn a_refused_sync_says_why() {
        let (result, _) =
            sync_against(b"+OK\r\n+OK\r\n-NOPERM this user has no permissions to run the 'sync' command\r\n")
                .await;
        let error = result.unwrap_err();
        assert!(matches!(error, Error::AuthFailed(_)), "{error:?}");
        let (result, _) = sync_against(b"+OK\r\n+OK\r\nhello\r\n").await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "redis at h:6379 answered SYNC with \"hello\", not a transfer header"
        );
    }
}
