//! What the PostgreSQL and MySQL engines share: the parts of a connection URI their
//! tools take, the names of scratch databases, and how a data file says what it is.

use std::collections::BTreeMap;
use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::Error;
use crate::domain::ConnectionUri;

/// The longest database name both engines take (PostgreSQL: 63 bytes; MySQL: 64).
const MAX_NAME: usize = 63;

/// A server address and login, taken apart from a connection URI.
#[derive(Clone)]
pub struct Endpoint {
    /// Host name, address, or (PostgreSQL) a socket directory.
    pub host: String,
    /// The port, if the URI names one.
    pub port: Option<u16>,
    /// The user name, if any.
    pub user: Option<String>,
    /// The password, if any. Never logged or shown.
    pub password: Option<String>,
    /// The database the URI names (its path), if any.
    pub database: Option<String>,
    /// The query parameters (`sslmode=require`, ...).
    pub params: BTreeMap<String, String>,
    /// The URI as shown: the password replaced by `****`.
    pub shown: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Endpoint {
    /// Takes `uri` apart; user, password and database are percent-decoded.
    pub fn parse(uri: &ConnectionUri) -> Result<Endpoint, Error> {
        let url = uri.expose();
        let decode = |text: &str| percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned();
        let params: BTreeMap<String, String> =
            url.query_pairs().map(|(key, value)| (key.into_owned(), value.into_owned())).collect();
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => decode(host),
            _ => params.get("host").cloned().unwrap_or_else(|| "localhost".to_owned()),
        };
        let database = decode(url.path().trim_start_matches('/'));
        Ok(Endpoint {
            host,
            port: url.port(),
            user: Some(decode(url.username())).filter(|user| !user.is_empty()),
            password: url.password().map(decode),
            database: Some(database).filter(|name| !name.is_empty()),
            params,
            shown: uri.redacted(),
        })
    }

    /// The secrets to scrub from tool output: the password, as given and encoded.
    pub fn secrets(&self) -> Vec<String> {
        let Some(password) = &self.password else { return Vec::new() };
        let encoded =
            percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC).to_string();
        vec![password.clone(), encoded]
    }

    /// The logical database to use: `database` when given, else the URI's.
    pub fn database_or_uri<'a>(&'a self, database: Option<&'a str>) -> Option<&'a str> {
        database.filter(|name| !name.is_empty()).or(self.database.as_deref())
    }

    /// [`Endpoint::database_or_uri`], or `DatabaseNotFound` saying how to name one.
    pub fn database_to_use(&self, database: Option<&str>) -> Result<String, Error> {
        self.database_or_uri(database).map(str::to_owned).ok_or_else(|| {
            Error::DatabaseNotFound(
                "no database named: give database_name, or name one in the connection URI's path".to_owned(),
            )
        })
    }
}

/// A scratch database name for loading into `target`: the target's name (cut to fit)
/// and a random tag, so that a leftover from a crash is easy to recognise.
pub fn scratch_name(target: &str) -> String {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let suffix = format!("_cellar_{tag}");
    let mut base = target.to_owned();
    while base.len() + suffix.len() > MAX_NAME {
        base.pop();
    }
    format!("{base}{suffix}")
}

/// Checks a logical database name: not empty, at most 63 bytes, no NUL or `/`.
pub fn check_database_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("must be 1 to {MAX_NAME} bytes long"));
    }
    if name.chars().any(|c| c == '\0' || c == '/' || c == '\\' || c.is_control()) {
        return Err("must not hold '/', '\\' or control characters".to_owned());
    }
    Ok(())
}

/// A name quoted as an identifier with `quote` (`"` for PostgreSQL, `` ` `` for MySQL),
/// the quote doubled inside.
pub fn quote_identifier(name: &str, quote: char) -> String {
    let doubled = format!("{quote}{quote}");
    format!("{quote}{}{quote}", name.replace(quote, &doubled))
}

/// A text as an SQL string literal (`'` doubled; backslashes doubled too, for MySQL).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Runs `clean_up` in the background, for a guard's `Drop` when the load it guards was
/// abandoned (cancelled) half-way; a failure is logged with `what`. Outside a Tokio
/// runtime (a guard dropped at exit) there is nothing to run it on, and nothing is done.
pub fn clean_up_later(
    what: String,
    clean_up: impl std::future::Future<Output = Result<(), Error>> + Send + 'static,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        if let Err(error) = clean_up.await {
            tracing::warn!(task = %what, %error, "an abandoned load's clean-up failed");
        }
    });
}

/// The first bytes of a file, for telling formats apart.
pub async fn head(path: &Path, len: usize) -> Result<Vec<u8>, Error> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|error| Error::Corrupt(format!("cannot open the data file: {error}")))?;
    let mut head = Vec::with_capacity(len);
    file.take(len as u64)
        .read_to_end(&mut head)
        .await
        .map_err(|error| Error::Corrupt(format!("cannot read the data file: {error}")))?;
    Ok(head)
}

/// The first bytes of a stream (up to `len`, fewer only at its end), for telling formats
/// apart; they are to be given again before the rest (`head.chain(body)`).
pub async fn head_of(body: &mut (dyn AsyncRead + Send + Unpin), len: usize) -> Result<Vec<u8>, Error> {
    let mut head = Vec::with_capacity(len);
    (&mut *body)
        .take(len as u64)
        .read_to_end(&mut head)
        .await
        .map_err(|error| Error::Corrupt(format!("cannot read the data: {error}")))?;
    Ok(head)
}

/// Whether `head` starts like SQL text: valid UTF-8 (or cut mid-character at the
/// end) without NUL bytes.
pub fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_taken_apart_and_decoded() {
        let uri =
            ConnectionUri::parse("postgres://app%40x:p%2Fss@db.example:6432/orders?sslmode=require").unwrap();
        let endpoint = Endpoint::parse(&uri).unwrap();
        assert_eq!(endpoint.host, "db.example");
        assert_eq!(endpoint.port, Some(6432));
        assert_eq!(endpoint.user.as_deref(), Some("app@x"));
        assert_eq!(endpoint.password.as_deref(), Some("p/ss"));
        assert_eq!(endpoint.database.as_deref(), Some("orders"));
        assert_eq!(endpoint.params["sslmode"], "require");
        assert!(!format!("{endpoint:?}").contains("p%2Fss"));
        assert_eq!(endpoint.secrets(), vec!["p/ss".to_owned(), "p%2Fss".to_owned()]);
        assert_eq!(endpoint.database_or_uri(Some("other")), Some("other"));
        assert_eq!(endpoint.database_or_uri(Some("")), Some("orders"));
        assert_eq!(endpoint.database_to_use(None).unwrap(), "orders");

        let socket = ConnectionUri::parse("postgres://u@%2Fvar%2Frun%2Fpostgresql/").unwrap();
        let endpoint = Endpoint::parse(&socket).unwrap();
        assert_eq!(endpoint.host, "/var/run/postgresql");
        assert_eq!(endpoint.database, None);
        assert!(matches!(endpoint.database_to_use(None), Err(Error::DatabaseNotFound(_))));
    }

    #[test]
    fn scratch_names_fit_and_differ() {
        let long = "x".repeat(70);
        let name = scratch_name(&long);
        assert!(name.len() <= MAX_NAME && name.contains("_cellar_"), "{name}");
        assert_ne!(scratch_name("orders"), scratch_name("orders"));
    }

    #[test]
    fn names_and_literals_are_quoted() {
        assert_eq!(quote_identifier("a\"b", '"'), "\"a\"\"b\"");
        assert_eq!(quote_identifier("a`b", '`'), "`a``b`");
        assert_eq!(quote_literal("it's \\"), "'it''s \\\\'");
        assert!(check_database_name("orders-2026").is_ok());
        assert!(check_database_name("").is_err());
        assert!(check_database_name("a/b").is_err());
    }

    #[test]
    fn text_is_told_from_binary() {
        assert!(looks_like_text(b"-- dump\nCREATE TABLE t (a int);"));
        assert!(looks_like_text("caf\u{e9}".as_bytes().split_last().unwrap().1));
        assert!(!looks_like_text(b"PGDMP\x01\x0e\x00"));
        assert!(!looks_like_text(b""));
    }
}
