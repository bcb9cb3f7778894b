//! A connection to a Redis server: TCP or TLS with timeouts, `AUTH`, and the few RESP2
//! commands and replies a snapshot needs.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::target::{Credentials, Target};
use super::tls;
use crate::engine::Error;

/// How many bytes one read asks the socket for while speaking commands.
const READ_CHUNK: usize = 64 * 1024;
/// The largest reply or line accepted while speaking commands (`INFO` is a few KiB).
const MAX_REPLY: usize = 16 * 1024 * 1024;
/// How deep arrays may nest in a reply.
const MAX_DEPTH: usize = 8;

/// A byte stream to a server: plain TCP or TLS.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$5 hello`, or `$-1` (`None`).
    Bulk(Option<Bytes>),
    /// `*2 ...`, or `*-1` (`None`).
    Array(Option<Vec<Reply>>),
}

/// An open, authenticated connection. Dropping it closes the socket.
pub(crate) struct Connection {
    stream: Box<dyn Transport>,
    /// Bytes received and not yet consumed.
    buffer: BytesMut,
    /// `host:port`, for messages.
    label: String,
    /// How long a read may wait for the server's next bytes.
    read_timeout: Duration,
    /// Our end of the TCP connection, when known: an address the server can reach us at.
    local_addr: Option<SocketAddr>,
}

impl Connection {
    /// Connects (TCP, then TLS for `rediss://`) within `connect_timeout`, then sends
    /// `AUTH` when the target has credentials.
    pub(crate) async fn open(
        target: &Target,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Connection, Error> {
        let (stream, local_addr) = tokio::time::timeout(connect_timeout, connect(target))
            .await
            .map_err(|_| {
                Error::Unreachable(format!(
                    "cannot connect to redis at {}: no answer within {} s",
                    target.label,
                    connect_timeout.as_secs_f64()
                ))
            })?
            .map_err(|reason| {
                Error::Unreachable(format!("cannot connect to redis at {}: {reason}", target.label))
            })?;
        let mut connection = Connection::new(stream, target.label.clone(), read_timeout);
        connection.local_addr = Some(local_addr);
        if let Some(credentials) = &target.credentials {
            connection.authenticate(credentials).await?;
        }
        Ok(connection)
    }

    /// Wraps an open stream.
    pub(crate) fn new(stream: Box<dyn Transport>, label: String, read_timeout: Duration) -> Connection {
        Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_CHUNK),
            label,
            read_timeout,
            local_addr: None,
        }
    }

    /// Our end of the connection, for a connection opened with [`Connection::open`].
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// `host:port`, for messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Sends a command and reads its reply; an error reply is returned as
    /// [`Reply::Error`], for the caller to judge.
    pub(crate) async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, Error> {
        self.send(args).await?;
        self.read_reply().await
    }

    /// Sends a command without reading a reply.
    pub(crate) async fn send(&mut self, args: &[&[u8]]) -> Result<(), Error> {
        let encoded = encode_command(args);
        let written = async {
            self.stream.write_all(&encoded).await?;
            self.stream.flush().await
        };
        written.await.map_err(|error| self.broken(error))
    }

    /// Sends bytes already encoded as commands.
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let written = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        written.await.map_err(|error| self.broken(error))
    }

    /// Reads one reply.
    pub(crate) async fn read_reply(&mut self) -> Result<Reply, Error> {
        loop {
            match parse_reply(&self.buffer) {
                Ok(Some((reply, used))) => {
                    let _ = self.buffer.split_to(used);
                    return Ok(reply);
                }
                Ok(None) if self.buffer.len() > MAX_REPLY => {
                    return Err(self.protocol(format!("sent a reply larger than {MAX_REPLY} bytes")));
                }
                Ok(None) => self.fill().await?,
                Err(problem) => return Err(self.protocol(problem)),
            }
        }
    }

    /// Reads one line, up to `\n`, and returns it without its `\r\n` or `\n`.
    pub(crate) async fn read_line(&mut self) -> Result<Bytes, Error> {
        let mut searched = 0;
        loop {
            if let Some(offset) = self.buffer[searched..].iter().position(|&byte| byte == b'\n') {
                let mut line = self.buffer.split_to(searched + offset + 1).freeze();
                line.truncate(line.len() - 1);
                if line.ends_with(b"\r") {
                    line.truncate(line.len() - 1);
                }
                return Ok(line);
            }
            if self.buffer.len() > MAX_REPLY {
                return Err(self.protocol(format!("sent a line longer than {MAX_REPLY} bytes")));
            }
            searched = self.buffer.len();
            self.fill().await?;
        }
    }

    /// Reads until at least `count` bytes are buffered, and returns the buffer.
    pub(crate) async fn peek(&mut self, count: usize) -> Result<&[u8], Error> {
        while self.buffer.len() < count {
            self.fill().await?;
        }
        Ok(&self.buffer)
    }

    /// The stream, and the bytes already received from it but not consumed.
    pub(crate) fn into_parts(self) -> (Box<dyn Transport>, BytesMut) {
        (self.stream, self.buffer)
    }

    async fn authenticate(&mut self, credentials: &Credentials) -> Result<(), Error> {
        let mut reply = self.command(&credentials.auth_command()).await?;
        if credentials.is_default_user() && matches!(&reply, Reply::Error(message) if is_arity_error(message))
        {
            // Servers before 6.0 know only `AUTH password`, which means the default user.
            reply = self.command(&credentials.without_username().auth_command()).await?;
        }
        match reply {
            Reply::Status(_) => Ok(()),
            Reply::Error(message) => Err(Error::AuthFailed(format!(
                "redis at {} refused the credentials: {}",
                self.label,
                without_password(&server_message(&message), &credentials.password)
            ))),
            other => Err(self.protocol(format!("answered AUTH with {}", describe(&other)))),
        }
    }

    /// Reads more bytes into the buffer, waiting at most the read timeout.
    async fn fill(&mut self) -> Result<(), Error> {
        self.buffer.reserve(READ_CHUNK);
        let read = tokio::time::timeout(self.read_timeout, self.stream.read_buf(&mut self.buffer)).await;
        match read {
            Ok(Ok(0)) => Err(Error::Unreachable(format!("redis at {} closed the connection", self.label))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(self.broken(error)),
            Err(_) => Err(Error::Unreachable(format!(
                "redis at {} sent nothing for {} s",
                self.label,
                self.read_timeout.as_secs_f64()
            ))),
        }
    }

    fn broken(&self, error: std::io::Error) -> Error {
        Error::Unreachable(format!("connection to redis at {} failed: {error}", self.label))
    }

    fn protocol(&self, problem: impl std::fmt::Display) -> Error {
        Error::Protocol(format!("redis at {} {problem}", self.label))
    }
}

/// Opens TCP, then TLS when asked; returns the stream and our end's address. The error
/// says what failed.
async fn connect(target: &Target) -> Result<(Box<dyn Transport>, SocketAddr), String> {
    let tcp =
        TcpStream::connect((target.host.as_str(), target.port)).await.map_err(|error| error.to_string())?;
    // Commands are small and answered one at a time: do not wait to fill packets.
    tcp.set_nodelay(true).map_err(|error| error.to_string())?;
    let local_addr = tcp.local_addr().map_err(|error| error.to_string())?;
    match target.tls {
        None => Ok((Box::new(tcp), local_addr)),
        Some(verification) => {
            Ok((Box::new(tls::handshake(tcp, &target.host, verification).await?), local_addr))
        }
    }
}

/// The error for a command the server refused, by the error code that starts `message`:
/// credentials and permissions, a server not ready yet, or anything else.
pub(crate) fn refusal(label: &str, command: &str, message: &str) -> Error {
    let message = server_message(message);
    let code = message.split_ascii_whitespace().next().unwrap_or_default();
    match code {
        "NOAUTH" => Error::AuthFailed(format!("redis at {label} needs credentials: {message}")),
        "WRONGPASS" => Error::AuthFailed(format!("redis at {label} refused the credentials: {message}")),
        "NOPERM" => {
            Error::AuthFailed(format!("redis at {label} does not let this user run {command}: {message}"))
        }
        "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" => {
            Error::Unreachable(format!("redis at {label} is not ready for {command}: {message}"))
        }
        _ => Error::Unsupported(format!("redis at {label} refused {command}: {message}")),
    }
}

/// The error for a reply `command` should not have had: the server's own message for an
/// error (it names no value), other replies described by kind only.
pub(crate) fn refused(connection: &Connection, command: &str, reply: &Reply) -> Error {
    let shown = match reply {
        Reply::Error(message) => message.clone(),
        other => describe(other).to_owned(),
    };
    Error::Protocol(format!("redis at {} answered {command} with {shown}", connection.label()))
}

/// A server's error text fit for our messages: trimmed, without a trailing period.
fn server_message(message: &str) -> String {
    message.trim().trim_end_matches('.').to_owned()
}

/// Redis never repeats a password in an error, but a proxy in front of it might.
fn without_password(message: &str, password: &[u8]) -> String {
    let password = String::from_utf8_lossy(password);
    if password.is_empty() { message.to_owned() } else { message.replace(password.as_ref(), "****") }
}

fn is_arity_error(message: &str) -> bool {
    message.contains("wrong number of arguments")
}

/// A reply's kind, for a message about an unexpected one.
pub(crate) fn describe(reply: &Reply) -> &'static str {
    match reply {
        Reply::Status(_) => "a status",
        Reply::Error(_) => "an error",
        Reply::Integer(_) => "an integer",
        Reply::Bulk(_) => "a string",
        Reply::Array(_) => "an array",
    }
}

/// Encodes a command as a RESP array of bulk strings, which carries any bytes.
pub(crate) fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let size = args.iter().map(|arg| arg.len() + 16).sum::<usize>() + 16;
    let mut encoded = Vec::with_capacity(size);
    encode_command_into(&mut encoded, args);
    encoded
}

/// Appends a command, encoded as [`encode_command`] does, to `out`.
pub(crate) fn encode_command_into(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_array_header(out, args.len());
    for arg in args {
        push_bulk_header(out, arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `*<count>\r\n`, the start of a command of `count` arguments.
pub(crate) fn push_array_header(out: &mut Vec<u8>, count: usize) {
    out.push(b'*');
    push_decimal(out, count);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$<len>\r\n`, which goes before an argument of `len` bytes (and its own
/// `\r\n` after it).
pub(crate) fn push_bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
}

/// Appends `number` in decimal digits.
fn push_decimal(out: &mut Vec<u8>, mut number: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Parses one reply from the front of `input`: the reply and the bytes it took, or
/// `None` when `input` ends before the reply does.
pub(crate) fn parse_reply(input: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    parse_at(input, 0)
}

fn parse_at(input: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, String> {
    let Some(newline) = input.iter().position(|&byte| byte == b'\n') else {
        return Ok(None);
    };
    if newline == 0 || input[newline - 1] != b'\r' {
        return Err("sent a reply line not ending in \\r\\n".into());
    }
    let line = &input[1..newline - 1];
    let after_line = newline + 1;
    let text = || String::from_utf8_lossy(line).into_owned();
    match input[0] {
        b'+' => Ok(Some((Reply::Status(text()), after_line))),
        b'-' => Ok(Some((Reply::Error(text()), after_line))),
        b':' => Ok(Some((Reply::Integer(parse_integer(line)?), after_line))),
        b'$' => {
            let Some(length) = parse_length(line)? else {
                return Ok(Some((Reply::Bulk(None), after_line)));
            };
            let end = after_line + length;
            match input.get(end..end + 2) {
                None => Ok(None),
                Some(b"\r\n") => {
                    Ok(Some((Reply::Bulk(Some(Bytes::copy_from_slice(&input[after_line..end]))), end + 2)))
                }
                Some(_) => Err("sent a string reply not ending in \\r\\n".into()),
            }
        }
        b'*' => {
            let Some(count) = parse_length(line)? else {
                return Ok(Some((Reply::Array(None), after_line)));
            };
            if depth >= MAX_DEPTH {
                return Err(format!("sent arrays nested deeper than {MAX_DEPTH}"));
            }
            let mut items = Vec::with_capacity(count.min(1024));
            let mut used = after_line;
            for _ in 0..count {
                let Some((item, item_length)) = parse_at(&input[used..], depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                used += item_length;
            }
            Ok(Some((Reply::Array(Some(items)), used)))
        }
        other => Err(format!("sent a reply starting with byte 0x{other:02x}, not a resp2 type")),
    }
}

fn parse_integer(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("sent {:?} where a number belongs", String::from_utf8_lossy(line)))
}

/// A bulk or array length: `None` for `-1`.
fn parse_length(line: &[u8]) -> Result<Option<usize>, String> {
    match parse_integer(line)? {
        -1 => Ok(None),
        length if (0..=MAX_REPLY as i64).contains(&length) => Ok(Some(length as usize)),
        length => Err(format!("sent a reply length of {length}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], expected: Reply) {
        let (reply, used) = parse_reply(input).unwrap().unwrap();
        assert_eq!((reply, used), (expected, input.len()), "{:?}", String::from_utf8_lossy(input));
        for end in 0..input.len() {
            assert_eq!(parse_reply(&input[..end]).unwrap(), None, "a prefix of {end} bytes is incomplete");
        }
    }

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(Some(Bytes::copy_from_slice(text.as_bytes())))
    }

    #[test]
    fn parses_every_resp2_type() {
        check(b"+OK\r\n", Reply::Status("OK".into()));
        check(
            b"-WRONGPASS invalid username-password pair\r\n",
            Reply::Error("WRONGPASS invalid username-password pair".into()),
        );
        check(b":-42\r\n", Reply::Integer(-42));
        check(b"$5\r\nhe\r\no\r\n", bulk("he\r\no"));
        check(b"$0\r\n\r\n", bulk(""));
        check(b"$-1\r\n", Reply::Bulk(None));
        check(b"*-1\r\n", Reply::Array(None));
        check(
            b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n",
            Reply::Array(Some(vec![Reply::Integer(1), Reply::Array(Some(vec![bulk("x")]))])),
        );
    }

    #[test]
    fn leaves_what_follows_a_reply() {
        let (reply, used) = parse_reply(b"+OK\r\n$EOF:").unwrap().unwrap();
        assert_eq!((reply, used), (Reply::Status("OK".into()), 5));
    }

    #[test]
    fn rejects_malformed_replies() {
        for input in [&b"?x\r\n"[..], b"+OK\n", b":x\r\n", b"$2\r\nabc\r\n", b"$-2\r\n", b"*99999999999\r\n"]
        {
            assert!(parse_reply(input).is_err(), "{:?}", String::from_utf8_lossy(input));
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(parse_reply(deep.as_bytes()).is_err());
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        assert_eq!(encode_command(&[b"AUTH", b"p w\r\n"]), b"*2\r\n$4\r\nAUTH\r\n$5\r\np w\r\n\r\n");
        assert_eq!(encode_command(&[b"SYNC"]), b"*1\r\n$4\r\nSYNC\r\n");
    }

    #[test]
    fn refusals_are_classified_by_error_code() {
        let check = |message: &str, expected: &str| {
            let error = refusal("h:1", "SYNC", message);
            assert_eq!(format!("{error:?}").split('(').next().unwrap(), expected, "{message}");
        };
        check("NOAUTH Authentication required.", "AuthFailed");
        check("WRONGPASS invalid username-password pair or user is disabled.", "AuthFailed");
        check("NOPERM this user has no permissions to run the 'sync' command", "AuthFailed");
        check("LOADING Redis is loading the dataset in memory", "Unreachable");
        check("ERR unknown command 'SYNC'", "Unsupported");
        assert_eq!(
            refusal("h:1", "SYNC", "NOAUTH Authentication required.").to_string(),
            "redis at h:1 needs credentials: NOAUTH Authentication required"
        );
    }

    #[test]
    fn auth_errors_never_show_the_password() {
        assert_eq!(without_password("ERR bad hunter2 here", b"hunter2"), "ERR bad **** here");
        assert_eq!(without_password("ERR x", b""), "ERR x");
    }

    #[tokio::test]
    async fn failed_auth_names_the_server_and_hides_the_password() {
        let (client, mut server) = tokio::io::duplex(1024);
        let answer = async {
            let mut received = vec![0; 64];
            let _ = server.read(&mut received).await.unwrap();
            server
                .write_all(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
                .await
                .unwrap();
            server
        };
        let credentials = Credentials { username: Some(b"backup".to_vec()), password: b"hunter2".to_vec() };
        let mut connection = Connection::new(Box::new(client), "h:6379".into(), Duration::from_secs(5));
        let (result, _server) = tokio::join!(connection.authenticate(&credentials), answer);
        let error = result.unwrap_err();
        assert!(matches!(error, Error::AuthFailed(_)), "{error:?}");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            error.to_string(),
            "redis at h:6379 refused the credentials: WRONGPASS invalid username-password pair or user is disabled"
        );
    }

    #[tokio::test]
    async fn reads_lines_and_replies_across_chunks() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut connection = Connection::new(Box::new(client), "h:6379".into(), Duration::from_secs(5));
        let send = async {
            for chunk in [&b"+O"[..], b"K\r\n\n", b"\r", b"\n$EOF:", b"x\r\nREDIS"] {
                server.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            server
        };
        let read = async {
            let reply = connection.read_reply().await.unwrap();
            let lines = [connection.read_line().await.unwrap(), connection.read_line().await.unwrap()];
            let header = connection.read_line().await.unwrap();
            let peeked = connection.peek(5).await.unwrap().to_vec();
            (reply, lines, header, peeked)
        };
        let ((reply, lines, header, peeked), _server) = tokio::join!(read, send);
        assert_eq!(reply, Reply::Status("OK".into()));
        assert_eq!(lines, [Bytes::new(), Bytes::new()]);
        assert_eq!(header, Bytes::from_static(b"$EOF:x"));
        assert_eq!(peeked, b"REDIS");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (client, _server) = tokio::io::duplex(1024);
        let mut connection = Connection::new(Box::new(client), "h:6379".into(), Duration::from_millis(50));
        let error = connection.read_reply().await.unwrap_err();
        assert_eq!(error.to_string(), "redis at h:6379 sent nothing for 0.05 s");
    }
}
