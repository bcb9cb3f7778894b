//! Configuration: defaults, then a TOML file, then `CELLAR_*` environment variables,
//! then command-line flags, each overriding the one before. Every problem found is
//! reported at once, each naming where the bad value came from.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::AllowedHost;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The server's configuration, valid by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the catalog and the `local` destination.
    pub data_dir: PathBuf,
    /// Snapshotting jobs allowed at once (at least 1).
    pub max_concurrent_backups: u32,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`tracing` directives).
    pub log_level: String,
    /// How long shutdown waits for running operations.
    pub shutdown_timeout: Duration,
    /// Where restores stage decompressed data; `None` means `<data_dir>/spool`.
    pub spool_dir: Option<PathBuf>,
    /// Absolute directories `file://` import sources may be under; empty: none allowed.
    pub file_roots: Vec<PathBuf>,
    /// Directories the PostgreSQL and MySQL tools (`pg_dump`, `mariadb-dump`, ...) are
    /// looked for in, and nowhere else; empty: PATH and each engine's usual places.
    pub tool_path: Vec<PathBuf>,
    /// How Redis restores and imports load the target.
    pub redis_load: crate::engine::redis::LoadMethod,
    /// Where the Prometheus endpoint listens; `None`: no endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Hosts http(s) import sources and webhooks may reach even at internal addresses
    /// (loopback, private, link-local); empty: public addresses only.
    pub allow_hosts: Vec<AllowedHost>,
    /// Where the download listener serves signed links; `None`: no listener (then
    /// ExportBackup works only for stores that presign URLs).
    pub download_listen: Option<SocketAddr>,
    /// The public base of the listener's links; `None`: `http://<download_listen>`.
    pub download_base_url: Option<url::Url>,
    /// The file holding the links' signing key; `None`: `<data_dir>/download.key`,
    /// generated at first start.
    pub download_key_file: Option<PathBuf>,
    /// The listeners' TLS certificate chain (PEM); `None`: plain TCP.
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates for client certificates (mTLS); `None`: none asked for.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Whether clients must present a certificate when `tls_client_ca_file` is set.
    pub tls_client_auth: crate::tls::ClientAuth,
    /// Where the catalog key comes from: `catalog_key_file`, else `CELLAR_CATALOG_KEY`,
    /// else a key generated in the user's configuration directory.
    pub catalog_key: crate::metadata::KeySource,
    /// age identity files (`AGE-SECRET-KEY-1...` lines) that open encrypted backups for
    /// restores; empty: encrypted backups cannot be restored.
    pub age_identity_files: Vec<PathBuf>,
    /// Who may call: tokens, JWT verification (`[auth]`); none configured: open, which
    /// only a loopback `listen` allows.
    pub auth: crate::auth::config::AuthConfig,
}

/// Where the download listener listens unless told otherwise: loopback only.
pub const DEFAULT_DOWNLOAD_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 50052));

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("./cellar-data"),
            max_concurrent_backups: 4,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            shutdown_timeout: Duration::from_secs(30),
            spool_dir: None,
            file_roots: Vec::new(),
            tool_path: Vec::new(),
            redis_load: crate::engine::redis::LoadMethod::Auto,
            metrics_listen: None,
            allow_hosts: Vec::new(),
            download_listen: Some(DEFAULT_DOWNLOAD_LISTEN),
            download_base_url: None,
            download_key_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_client_auth: crate::tls::ClientAuth::Required,
            catalog_key: crate::metadata::KeySource::Default,
            age_identity_files: Vec::new(),
            auth: crate::auth::config::AuthConfig::default(),
        }
    }
}

/// Raw values from one source; `None` keeps the value of the sources before it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// `listen`.
    pub listen: Option<String>,
    /// `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `max_concurrent_backups` (text, so that every source is parsed the same way).
    #[serde(default, deserialize_with = "text_or_number")]
    pub max_concurrent_backups: Option<String>,
    /// `log_format`.
    pub log_format: Option<String>,
    /// `log_level`.
    pub log_level: Option<String>,
    /// `shutdown_timeout`, e.g. `30s`, `2m`.
    pub shutdown_timeout: Option<String>,
    /// `spool_dir`.
    pub spool_dir: Option<PathBuf>,
    /// `file_roots` (the environment separates them with `:`).
    pub file_roots: Option<Vec<PathBuf>>,
    /// `tool_path` (the environment separates them with `:`).
    pub tool_path: Option<Vec<PathBuf>>,
    /// `redis_load`: `auto`, `restore` or `replication`.
    pub redis_load: Option<String>,
    /// `metrics_listen`: an address, or empty for none.
    pub metrics_listen: Option<String>,
    /// `allow_hosts`: a list, or one string of comma-separated hosts (as the
    /// environment gives them).
    #[serde(default, deserialize_with = "list_or_text")]
    pub allow_hosts: Option<Vec<String>>,
    /// `download_listen`: an address, or empty for no listener.
    pub download_listen: Option<String>,
    /// `download_base_url`: an http(s) URL, or empty for `http://<download_listen>`.
    pub download_base_url: Option<String>,
    /// `download_key_file`: a path, or empty for the generated key.
    pub download_key_file: Option<PathBuf>,
    /// `tls_cert_file`: a path, or empty for plain TCP.
    pub tls_cert_file: Option<PathBuf>,
    /// `tls_key_file`: a path.
    pub tls_key_file: Option<PathBuf>,
    /// `tls_client_ca_file`: a path, or empty for no client certificates.
    pub tls_client_ca_file: Option<PathBuf>,
    /// `tls_client_auth`: `required` or `optional`.
    pub tls_client_auth: Option<String>,
    /// `catalog_key_file`: a path, or empty for the generated key.
    pub catalog_key_file: Option<PathBuf>,
    /// The catalog key itself: from `CELLAR_CATALOG_KEY` only, never from a file.
    #[serde(skip)]
    pub catalog_key: Option<crate::domain::Secret>,
    /// `age_identity_file`: one path or a list (the environment separates them with `:`).
    #[serde(default, deserialize_with = "list_or_text")]
    pub age_identity_file: Option<Vec<String>>,
    /// The `[auth]` section (config file only: tokens do not belong in flags).
    pub auth: Option<crate::auth::config::AuthFile>,
}

/// Everything wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// One line per problem: `<source>: <problem>`.
    pub problems: Vec<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Loads the configuration from the file (if any), the environment pairs and the flags.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: Overrides,
) -> Result<Config, Error> {
    let mut problems = Vec::new();
    let mut config = Config::default();
    if let Some(path) = file {
        let source = format!("config file {}", path.display());
        match read_file(path) {
            Ok(from_file) => apply(&mut config, from_file, &|key| format!("{source}: {key}"), &mut problems),
            Err(problem) => problems.push(format!("{source}: {problem}")),
        }
    }
    apply(&mut config, from_env(env), &|key| format!("CELLAR_{}", key.to_ascii_uppercase()), &mut problems);
    apply(&mut config, flags, &|key| format!("--{}", key.replace('_', "-")), &mut problems);
    if let Err(problem) = config.tls() {
        problems.push(problem);
    }
    if !config.auth.certificates.is_empty() && config.tls_client_ca_file.is_none() {
        problems.push(
            "auth.client_certificates: need tls_client_ca_file (client certificates over TLS)".to_owned(),
        );
    }
    problems.extend(crate::auth::config::check_listen(config.listen, &config.auth));
    if problems.is_empty() { Ok(config) } else { Err(Error { problems }) }
}

impl Config {
    /// The listeners' TLS settings, `None` for plain TCP; an error when the files set do
    /// not go together (a certificate without its key, a client CA without either).
    pub fn tls(&self) -> Result<Option<crate::tls::TlsSettings>, String> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Ok(Some(crate::tls::TlsSettings {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                client_ca_file: self.tls_client_ca_file.clone(),
                client_auth: self.tls_client_auth,
            })),
            (None, None) if self.tls_client_ca_file.is_none() => Ok(None),
            (None, None) => Err("tls_client_ca_file: needs tls_cert_file and tls_key_file".to_owned()),
            (Some(_), None) => Err("tls_cert_file: needs tls_key_file".to_owned()),
            (None, Some(_)) => Err("tls_key_file: needs tls_cert_file".to_owned()),
        }
    }
}

fn read_file(path: &Path) -> Result<Overrides, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read: {error}"))?;
    toml::from_str(&text).map_err(|error| error.message().to_owned())
}

fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Overrides {
    let mut overrides = Overrides::default();
    for (key, value) in env {
        match key.as_str() {
            "CELLAR_LISTEN" => overrides.listen = Some(value),
            "CELLAR_DATA_DIR" => overrides.data_dir = Some(PathBuf::from(value)),
            "CELLAR_MAX_CONCURRENT_BACKUPS" => overrides.max_concurrent_backups = Some(value),
            "CELLAR_LOG_FORMAT" => overrides.log_format = Some(value),
            "CELLAR_LOG_LEVEL" => overrides.log_level = Some(value),
            "CELLAR_SHUTDOWN_TIMEOUT" => overrides.shutdown_timeout = Some(value),
            "CELLAR_SPOOL_DIR" => overrides.spool_dir = Some(PathBuf::from(value)),
            "CELLAR_REDIS_LOAD" => overrides.redis_load = Some(value),
            "CELLAR_METRICS_LISTEN" => overrides.metrics_listen = Some(value),
            "CELLAR_FILE_ROOTS" => {
                overrides.file_roots = Some(std::env::split_paths(&value).collect());
            }
            "CELLAR_TOOL_PATH" => overrides.tool_path = Some(std::env::split_paths(&value).collect()),
            "CELLAR_ALLOW_HOSTS" => overrides.allow_hosts = Some(split_list(&value)),
            "CELLAR_DOWNLOAD_LISTEN" => overrides.download_listen = Some(value),
            "CELLAR_DOWNLOAD_BASE_URL" => overrides.download_base_url = Some(value),
            "CELLAR_DOWNLOAD_KEY_FILE" => overrides.download_key_file = Some(PathBuf::from(value)),
            "CELLAR_TLS_CERT_FILE" => overrides.tls_cert_file = Some(PathBuf::from(value)),
            "CELLAR_TLS_KEY_FILE" => overrides.tls_key_file = Some(PathBuf::from(value)),
            "CELLAR_TLS_CLIENT_CA_FILE" => overrides.tls_client_ca_file = Some(PathBuf::from(value)),
            "CELLAR_TLS_CLIENT_AUTH" => overrides.tls_client_auth = Some(value),
            "CELLAR_CATALOG_KEY_FILE" => overrides.catalog_key_file = Some(PathBuf::from(value)),
            "CELLAR_CATALOG_KEY" => overrides.catalog_key = Some(crate::domain::Secret::new(value)),
            "CELLAR_AGE_IDENTITY_FILE" => {
                let paths = std::env::split_paths(&value).map(|path| path.display().to_string());
                overrides.age_identity_file = Some(paths.collect());
            }
            _ => {}
        }
    }
    overrides
}

// Applies one source's values; `name` spells a key the way that source does.
fn apply(
    config: &mut Config,
    overrides: Overrides,
    name: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) {
    apply_keys(config, &overrides, name, problems);
    if let Some(listen) = overrides.listen {
        match listen.trim().parse() {
            Ok(address) => config.listen = address,
            Err(_) => problems
                .push(format!("{}: '{listen}' is not a socket address like 127.0.0.1:50051", name("listen"))),
        }
    }
    if let Some(data_dir) = overrides.data_dir {
        if data_dir.as_os_str().is_empty() {
            problems.push(format!("{}: must not be empty", name("data_dir")));
        } else {
            config.data_dir = data_dir;
        }
    }
    if let Some(count) = overrides.max_concurrent_backups {
        match count.trim().parse::<u32>() {
            Ok(count) if count >= 1 => config.max_concurrent_backups = count,
            _ => problems.push(format!(
                "{}: '{count}' is not a whole number of at least 1",
                name("max_concurrent_backups")
            )),
        }
    }
    if let Some(format) = overrides.log_format {
        match format.trim().to_ascii_lowercase().as_str() {
            "text" => config.log_format = LogFormat::Text,
            "json" => config.log_format = LogFormat::Json,
            _ => problems.push(format!("{}: '{format}' is not text or json", name("log_format"))),
        }
    }
    if let Some(address) = overrides.metrics_listen {
        match address.trim() {
            "" => config.metrics_listen = None,
            text => match text.parse() {
                Ok(address) => config.metrics_listen = Some(address),
                Err(_) => problems.push(format!(
                    "{}: '{text}' is not an address like 127.0.0.1:9464",
                    name("metrics_listen")
                )),
            },
        }
    }
    if let Some(address) = overrides.download_listen {
        match address.trim() {
            "" => config.download_listen = None,
            text => match text.parse() {
                Ok(address) => config.download_listen = Some(address),
                Err(_) => problems.push(format!(
                    "{}: '{text}' is not an address like 127.0.0.1:50052",
                    name("download_listen")
                )),
            },
        }
    }
    if let Some(base) = overrides.download_base_url {
        match parse_base_url(base.trim()) {
            Ok(base) => config.download_base_url = base,
            Err(problem) => problems.push(format!("{}: {problem}", name("download_base_url"))),
        }
    }
    if let Some(auth) = overrides.auth {
        crate::auth::config::apply(&mut config.auth, auth, name, problems);
    }
    // A path given empty means none (the default).
    let path_or_none = |setting: &mut Option<PathBuf>, given: Option<PathBuf>| {
        if let Some(path) = given {
            *setting = (!path.as_os_str().is_empty()).then_some(path);
        }
    };
    path_or_none(&mut config.download_key_file, overrides.download_key_file);
    path_or_none(&mut config.tls_cert_file, overrides.tls_cert_file);
    path_or_none(&mut config.tls_key_file, overrides.tls_key_file);
    path_or_none(&mut config.tls_client_ca_file, overrides.tls_client_ca_file);
    if let Some(mode) = overrides.tls_client_auth {
        match mode.trim().to_ascii_lowercase().as_str() {
            "required" => config.tls_client_auth = crate::tls::ClientAuth::Required,
            "optional" => config.tls_client_auth = crate::tls::ClientAuth::Optional,
            _ => problems.push(format!("{}: '{mode}' is not required or optional", name("tls_client_auth"))),
        }
    }
    if let Some(method) = overrides.redis_load {
        match crate::engine::redis::LoadMethod::parse(method.trim()) {
            Some(method) => config.redis_load = method,
            None => problems
                .push(format!("{}: '{method}' is not auto, restore or replication", name("redis_load"))),
        }
    }
    if let Some(level) = overrides.log_level {
        match tracing_subscriber::EnvFilter::try_new(&level) {
            Ok(_) => config.log_level = level,
            Err(error) => {
                problems.push(format!("{}: '{level}' is not a log filter: {error}", name("log_level")))
            }
        }
    }
    if let Some(spool_dir) = overrides.spool_dir {
        if spool_dir.as_os_str().is_empty() {
            problems.push(format!("{}: must not be empty", name("spool_dir")));
        } else {
            config.spool_dir = Some(spool_dir);
        }
    }
    if let Some(roots) = overrides.file_roots {
        let relative: Vec<String> =
            roots.iter().filter(|root| !root.is_absolute()).map(|root| root.display().to_string()).collect();
        if relative.is_empty() {
            config.file_roots = roots;
        } else {
            problems.push(format!("{}: roots must be absolute: {}", name("file_roots"), relative.join(", ")));
        }
    }
    if let Some(dirs) = overrides.tool_path {
        let relative: Vec<String> =
            dirs.iter().filter(|dir| !dir.is_absolute()).map(|dir| dir.display().to_string()).collect();
        if relative.is_empty() {
            config.tool_path = dirs;
        } else {
            problems.push(format!(
                "{}: directories must be absolute: {}",
                name("tool_path"),
                relative.join(", ")
            ));
        }
    }
    if let Some(hosts) = overrides.allow_hosts {
        let (parsed, bad): (Vec<_>, Vec<_>) =
            hosts.iter().map(|host| AllowedHost::parse(host)).partition(Result::is_ok);
        if bad.is_empty() {
            config.allow_hosts = parsed.into_iter().filter_map(Result::ok).collect();
        } else {
            let problems_found: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
            problems.push(format!("{}: {}", name("allow_hosts"), problems_found.join("; ")));
        }
    }
    if let Some(timeout) = overrides.shutdown_timeout {
        match parse_duration(&timeout) {
            Some(timeout) => config.shutdown_timeout = timeout,
            None => problems.push(format!(
                "{}: '{timeout}' is not a duration like 30s, 2m or 1h",
                name("shutdown_timeout")
            )),
        }
    }
}

// The catalog key's source and the age identity files.
fn apply_keys(
    config: &mut Config,
    overrides: &Overrides,
    name: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) {
    use crate::metadata::KeySource;
    match (&overrides.catalog_key_file, &overrides.catalog_key) {
        (Some(_), Some(_)) => {
            problems.push(format!("{}: give a key file or a key, not both", name("catalog_key")))
        }
        (Some(path), None) if path.as_os_str().is_empty() => config.catalog_key = KeySource::Default,
        (Some(path), None) => config.catalog_key = KeySource::File(path.clone()),
        (None, Some(key)) if key.expose().is_empty() => config.catalog_key = KeySource::Default,
        (None, Some(key)) => config.catalog_key = KeySource::Value(key.clone()),
        (None, None) => {}
    }
    if let Some(files) = &overrides.age_identity_file {
        config.age_identity_files = files.iter().filter(|file| !file.is_empty()).map(PathBuf::from).collect();
    }
}

// An http(s) URL without credentials, query or fragment; empty for none.
fn parse_base_url(text: &str) -> Result<Option<url::Url>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let url = url::Url::parse(text)
        .map_err(|_| format!("'{text}' is not a URL like https://backups.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("'{text}' is not an http(s) URL"));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err("must have no user, password, query or fragment".to_owned());
    }
    Ok(Some(url))
}

/// Parses `500ms`, `30s`, `2m`, `1h`, `1d` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(number)),
        "" | "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(number.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(number.checked_mul(86_400)?)),
        _ => None,
    }
}

// `a, b,c` -> `["a", "b", "c"]`, empty items dropped.
fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

// TOML files may write `allow_hosts = ["a", "b"]` or `allow_hosts = "a, b"`.
fn list_or_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    let value: Option<ListOrText> = serde::Deserialize::deserialize(deserializer)?;
    Ok(value.map(|value| match value {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => split_list(&text),
    }))
}

// TOML files may write `max_concurrent_backups = 8` or `"8"`.
fn text_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Number(i64),
    }
    let value: Option<TextOrNumber> = serde::Deserialize::deserialize(deserializer)?;
    Ok(value.map(|value| match value {
        TextOrNumber::Text(text) => text,
        TextOrNumber::Number(number) => number.to_string(),
    }))
}

#[cfg(test)]
mod tests;
