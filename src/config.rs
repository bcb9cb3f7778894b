//! The server's configuration: defaults, then a TOML file, then `CELLAR_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Every source is parsed and checked on its own, so that each problem names where it
//! came from (`CELLAR_LISTEN: invalid socket address 'x'`), and [`load`] reports all the
//! problems of all the sources at once rather than the first. A bad value is an error
//! even when a later source overrides it.
//!
//! The file's keys, the variables and the flags (`main.rs` fills [`Overrides`] from clap):
//!
//! | key                      | variable                        | flag                       | default           |
//! |--------------------------|---------------------------------|----------------------------|-------------------|
//! | `listen`                 | `CELLAR_LISTEN`                 | `--listen`                 | `127.0.0.1:50051` |
//! | `data_dir`               | `CELLAR_DATA_DIR`               | `--data-dir`               | `./cellar-data`   |
//! | `max_concurrent_backups` | `CELLAR_MAX_CONCURRENT_BACKUPS` | `--max-concurrent-backups` | `4`               |
//! | `log_format`             | `CELLAR_LOG_FORMAT`             | `--log-format`             | `text`            |
//! | `log_level`              | `CELLAR_LOG_LEVEL`              | `--log-level`              | `info`            |
//! | `shutdown_timeout`       | `CELLAR_SHUTDOWN_TIMEOUT`       | `--shutdown-timeout`       | `30s`             |
//! | `file_roots`             | `CELLAR_FILE_ROOTS`             | `--file-root` (repeated)   | none              |
//!
//! `CELLAR_FILE_ROOTS` separates paths with `:` like `PATH`. An empty variable counts as
//! unset; other `CELLAR_*` variables are left to the commands that read them. Relative
//! paths are taken from the current directory.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The address served when none is configured.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50051));

/// The data directory used when none is configured.
pub const DEFAULT_DATA_DIR: &str = "./cellar-data";

/// How many backups run at once when not configured.
pub const DEFAULT_MAX_CONCURRENT_BACKUPS: u32 = 4;

/// The log filter used when none is configured.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// How long shutdown waits for running operations when not configured.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The prefix of the environment variables read by [`load`].
pub const ENV_PREFIX: &str = "CELLAR_";

/// The server's settings, complete and valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The gRPC listen address.
    pub listen: SocketAddr,
    /// Where the catalog and local backups live; absolute once loaded.
    pub data_dir: PathBuf,
    /// How many backups (and other snapshot-taking operations) run at once; at least 1.
    pub max_concurrent_backups: u32,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// A `tracing` filter (`info`, `cellar=debug,tower=warn`).
    pub log_level: String,
    /// How long shutdown waits for running operations before cancelling them.
    pub shutdown_timeout: Duration,
    /// The absolute directories `file://` imports may read from; none by default.
    pub file_roots: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_concurrent_backups: DEFAULT_MAX_CONCURRENT_BACKUPS,
            log_format: LogFormat::Text,
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            file_roots: Vec::new(),
        }
    }
}

impl Config {
    /// The SQLite catalog: `<data_dir>/catalog.sqlite`.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("catalog.sqlite")
    }

    /// The directory of the built-in `local` destination: `<data_dir>/backups`, absolute
    /// (it becomes a `file://` URI).
    pub fn backups_dir(&self) -> PathBuf {
        let dir = self.data_dir.join("backups");
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// Applies the settings a source set, leaving the others as they are.
    fn apply(&mut self, layer: Overrides) {
        // Destructured so that a new setting cannot be forgotten here.
        let Overrides {
            listen,
            data_dir,
            max_concurrent_backups,
            log_format,
            log_level,
            shutdown_timeout,
            file_roots,
        } = layer;
        self.listen = listen.unwrap_or(self.listen);
        self.data_dir = data_dir.unwrap_or(std::mem::take(&mut self.data_dir));
        self.max_concurrent_backups = max_concurrent_backups.unwrap_or(self.max_concurrent_backups);
        self.log_format = log_format.unwrap_or(self.log_format);
        self.log_level = log_level.unwrap_or(std::mem::take(&mut self.log_level));
        self.shutdown_timeout = shutdown_timeout.unwrap_or(self.shutdown_timeout);
        self.file_roots = file_roots.unwrap_or(std::mem::take(&mut self.file_roots));
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The text form: `text` or `json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format '{}'; expected text or json", text.trim())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings one source sets; `None` leaves the setting to earlier sources. `main.rs`
/// fills one from the command-line flags; a flag given replaces the setting whole (the
/// `--file-root` list included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--max-concurrent-backups`; must be at least 1.
    pub max_concurrent_backups: Option<u32>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--log-level`; must be a valid `tracing` filter.
    pub log_level: Option<String>,
    /// `--shutdown-timeout` (parse it with [`parse_duration`]).
    pub shutdown_timeout: Option<Duration>,
    /// `--file-root`, repeated; each must be absolute.
    pub file_roots: Option<Vec<PathBuf>>,
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  {}", problems.join("\n  "))]
pub struct Error {
    /// One line per problem, each naming its source (`CELLAR_LISTEN: ...`,
    /// `config file /etc/cellar.toml: listen: ...`, `--listen: ...`).
    pub problems: Vec<String>,
}

/// Builds the configuration from the defaults, the TOML `file` (if any), the environment
/// variables among `env` (pass `std::env::vars()`), and the command-line `flags`, in
/// increasing priority. Fails with every problem of every source.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: Overrides,
) -> Result<Config, Error> {
    let mut problems = Vec::new();
    let mut layers = Vec::new();
    if let Some(path) = file {
        let origin = Origin::File(path);
        let layer = read_file(path, &mut problems);
        check(&layer, &origin, &mut problems);
        layers.push(layer);
    }
    let env_layer = from_env(env, &mut problems);
    check(&env_layer, &Origin::Env, &mut problems);
    layers.push(env_layer);
    check(&flags, &Origin::Flags, &mut problems);
    layers.push(flags);

    let mut config = Config::default();
    for layer in layers {
        config.apply(layer);
    }
    match std::path::absolute(&config.data_dir) {
        Ok(absolute) => config.data_dir = absolute,
        Err(error) => {
            problems.push(format!("data_dir: cannot resolve '{}': {error}", config.data_dir.display()))
        }
    }
    if problems.is_empty() { Ok(config) } else { Err(Error { problems }) }
}

/// Parses a duration such as `30s`, `2m`, `1h30m`, `500ms` or `0`: one or more whole
/// numbers, each followed by a unit (`ms`, `s`, `m`, `h`, `d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("invalid duration '{text}'; expected e.g. 30s, 2m, 1h30m or 500ms");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_len = rest[digits..].find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit = match unit {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(60 * 60),
            "d" => Duration::from_secs(24 * 60 * 60),
            _ => return Err(invalid()),
        };
        let part =
            u32::try_from(number).ok().and_then(|number| unit.checked_mul(number)).ok_or_else(invalid)?;
        total = total.checked_add(part).ok_or_else(invalid)?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// One setting, named in each source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Listen,
    DataDir,
    MaxConcurrentBackups,
    LogFormat,
    LogLevel,
    ShutdownTimeout,
    FileRoots,
}

impl Setting {
    const ALL: [Setting; 7] = [
        Setting::Listen,
        Setting::DataDir,
        Setting::MaxConcurrentBackups,
        Setting::LogFormat,
        Setting::LogLevel,
        Setting::ShutdownTimeout,
        Setting::FileRoots,
    ];

    /// The key in the TOML file.
    fn key(self) -> &'static str {
        match self {
            Setting::Listen => "listen",
            Setting::DataDir => "data_dir",
            Setting::MaxConcurrentBackups => "max_concurrent_backups",
            Setting::LogFormat => "log_format",
            Setting::LogLevel => "log_level",
            Setting::ShutdownTimeout => "shutdown_timeout",
            Setting::FileRoots => "file_roots",
        }
    }

    /// The environment variable.
    fn env(self) -> &'static str {
        match self {
            Setting::Listen => "CELLAR_LISTEN",
            Setting::DataDir => "CELLAR_DATA_DIR",
            Setting::MaxConcurrentBackups => "CELLAR_MAX_CONCURRENT_BACKUPS",
            Setting::LogFormat => "CELLAR_LOG_FORMAT",
            Setting::LogLevel => "CELLAR_LOG_LEVEL",
            Setting::ShutdownTimeout => "CELLAR_SHUTDOWN_TIMEOUT",
            Setting::FileRoots => "CELLAR_FILE_ROOTS",
        }
    }

    /// The command-line flag.
    fn flag(self) -> &'static str {
        match self {
            Setting::Listen => "--listen",
            Setting::DataDir => "--data-dir",
            Setting::MaxConcurrentBackups => "--max-concurrent-backups",
            Setting::LogFormat => "--log-format",
            Setting::LogLevel => "--log-level",
            Setting::ShutdownTimeout => "--shutdown-timeout",
            Setting::FileRoots => "--file-root",
        }
    }
}

/// Where a value came from, for naming it in problems.
enum Origin<'a> {
    File(&'a Path),
    Env,
    Flags,
}

impl Origin<'_> {
    fn name(&self, setting: Setting) -> String {
        match self {
            Origin::File(path) => format!("config file {}: {}", path.display(), setting.key()),
            Origin::Env => setting.env().to_owned(),
            Origin::Flags => setting.flag().to_owned(),
        }
    }
}

/// Sets `setting` from its text form (an environment variable, a TOML string).
fn set_from_text(layer: &mut Overrides, setting: Setting, text: &str) -> Result<(), String> {
    let text = text.trim();
    match setting {
        Setting::Listen => layer.listen = Some(parse_listen(text)?),
        Setting::DataDir => layer.data_dir = Some(PathBuf::from(text)),
        Setting::MaxConcurrentBackups => {
            let count =
                text.parse().map_err(|_| format!("invalid number '{text}'; expected a whole number"))?;
            layer.max_concurrent_backups = Some(count);
        }
        Setting::LogFormat => layer.log_format = Some(text.parse()?),
        Setting::LogLevel => layer.log_level = Some(text.to_owned()),
        Setting::ShutdownTimeout => layer.shutdown_timeout = Some(parse_duration(text)?),
        Setting::FileRoots => layer.file_roots = Some(std::env::split_paths(text).collect()),
    }
    Ok(())
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("invalid socket address '{text}'; expected ip:port such as 127.0.0.1:50051"))
}

/// Sets `setting` from a TOML value: an integer for `max_concurrent_backups`, an array of
/// strings for `file_roots`, a string for the rest.
fn set_from_toml(layer: &mut Overrides, setting: Setting, value: toml::Value) -> Result<(), String> {
    match (setting, value) {
        (Setting::MaxConcurrentBackups, toml::Value::Integer(count)) => {
            let count = u32::try_from(count).map_err(|_| format!("{count} is out of range"))?;
            layer.max_concurrent_backups = Some(count);
        }
        (Setting::MaxConcurrentBackups, other) => {
            return Err(format!("expected an integer, found {}", other.type_str()));
        }
        (Setting::FileRoots, toml::Value::Array(items)) => {
            let roots = items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(path) => Ok(PathBuf::from(path)),
                    other => Err(format!(
                        "expected an array of strings, found an array with a {}",
                        other.type_str()
                    )),
                })
                .collect::<Result<_, _>>()?;
            layer.file_roots = Some(roots);
        }
        (Setting::FileRoots, other) => {
            return Err(format!("expected an array of paths, found {}", other.type_str()));
        }
        (_, toml::Value::String(text)) => set_from_text(layer, setting, &text)?,
        (_, other) => return Err(format!("expected a string, found {}", other.type_str())),
    }
    Ok(())
}

/// Reads the TOML file; every unknown key and every bad value is a problem.
///
/// The file is walked as a table rather than deserialized into a struct with
/// `deny_unknown_fields`, because serde stops at the first error and we report them all.
fn read_file(path: &Path, problems: &mut Vec<String>) -> Overrides {
    let mut layer = Overrides::default();
    let file_problem = |message: String| format!("config file {}: {message}", path.display());
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.push(file_problem(format!("cannot read it: {error}")));
            return layer;
        }
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(error) => {
            let error: toml::de::Error = error;
            let line = error.span().map_or(1, |span| text[..span.start].matches('\n').count() + 1);
            let message = error.message().trim_end().replace('\n', "; ");
            problems.push(file_problem(format!("line {line}: {message}")));
            return layer;
        }
    };
    for (key, value) in table {
        let Some(setting) = Setting::ALL.into_iter().find(|setting| setting.key() == key) else {
            let known: Vec<&str> = Setting::ALL.iter().map(|setting| setting.key()).collect();
            problems.push(file_problem(format!("unknown key '{key}'; known keys are {}", known.join(", "))));
            continue;
        };
        if let Err(message) = set_from_toml(&mut layer, setting, value) {
            problems.push(format!("{}: {message}", Origin::File(path).name(setting)));
        }
    }
    layer
}

/// Picks the `CELLAR_*` settings out of `env`; later pairs win over earlier ones.
fn from_env(env: impl IntoIterator<Item = (String, String)>, problems: &mut Vec<String>) -> Overrides {
    let mut layer = Overrides::default();
    for (name, value) in env {
        if !name.starts_with(ENV_PREFIX) || value.trim().is_empty() {
            continue;
        }
        let Some(setting) = Setting::ALL.into_iter().find(|setting| setting.env() == name) else { continue };
        if let Err(message) = set_from_text(&mut layer, setting, &value) {
            problems.push(format!("{name}: {message}"));
        }
    }
    layer
}

/// The checks a parsed value must pass whatever its source.
fn check(layer: &Overrides, origin: &Origin<'_>, problems: &mut Vec<String>) {
    let mut problem =
        |setting: Setting, message: String| problems.push(format!("{}: {message}", origin.name(setting)));
    if layer.max_concurrent_backups == Some(0) {
        problem(Setting::MaxConcurrentBackups, "must be at least 1".to_owned());
    }
    if layer.data_dir.as_ref().is_some_and(|dir| dir.as_os_str().is_empty()) {
        problem(Setting::DataDir, "must not be empty".to_owned());
    }
    if let Some(level) = &layer.log_level {
        if let Err(error) = tracing_subscriber::EnvFilter::builder().parse(level) {
            problem(Setting::LogLevel, format!("invalid log filter '{level}': {error}"));
        }
    }
    for root in layer.file_roots.iter().flatten() {
        if !root.is_absolute() {
            problem(Setting::FileRoots, format!("'{}' is not an absolute path", root.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    fn problems(result: Result<Config, Error>) -> Vec<String> {
        match result {
            Ok(config) => panic!("expected problems, got {config:?}"),
            Err(error) => error.problems,
        }
    }

    #[test]
    fn defaults() {
        let config = load(None, env(&[("PATH", "/bin"), ("HOME", "/root")]), Overrides::default()).unwrap();
        let expected =
            Config { data_dir: std::path::absolute(DEFAULT_DATA_DIR).unwrap(), ..Config::default() };
        assert_eq!(config, expected);
        assert_eq!(config.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(config.max_concurrent_backups, 4);
        assert_eq!((config.log_format, config.log_level.as_str()), (LogFormat::Text, "info"));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
        assert!(config.file_roots.is_empty());
        assert!(config.data_dir.is_absolute() && config.data_dir.ends_with("cellar-data"));
    }

    #[test]
    fn each_source_overrides_the_one_before() {
        let file = config_file(
            r#"
            listen = "0.0.0.0:1000"
            data_dir = "/from/file"
            max_concurrent_backups = 2
            log_format = "json"
            log_level = "debug"
            shutdown_timeout = "1m"
            file_roots = ["/srv/a", "/srv/b"]
            "#,
        );
        let from_file = load(Some(file.path()), env(&[]), Overrides::default()).unwrap();
        assert_eq!(
            from_file,
            Config {
                listen: "0.0.0.0:1000".parse().unwrap(),
                data_dir: PathBuf::from("/from/file"),
                max_concurrent_backups: 2,
                log_format: LogFormat::Json,
                log_level: "debug".into(),
                shutdown_timeout: Duration::from_secs(60),
                file_roots: vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")],
            }
        );

        let variables = env(&[
            ("CELLAR_LISTEN", "[::1]:2000"),
            ("CELLAR_MAX_CONCURRENT_BACKUPS", " 8 "),
            ("CELLAR_LOG_LEVEL", "cellar=trace"),
            ("CELLAR_SHUTDOWN_TIMEOUT", "1h30m"),
            ("CELLAR_FILE_ROOTS", "/env/a:/env/b"),
            ("CELLAR_LOG_FORMAT", ""),
        ]);
        let flags = Overrides {
            listen: Some("127.0.0.1:3000".parse().unwrap()),
            log_level: Some("warn".into()),
            file_roots: Some(vec![PathBuf::from("/flag")]),
            ..Overrides::default()
        };
        let config = load(Some(file.path()), variables, flags).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000", "flag over variable over file");
        assert_eq!(config.data_dir, PathBuf::from("/from/file"), "file over default");
        assert_eq!(config.max_concurrent_backups, 8, "variable over file");
        assert_eq!(config.log_format, LogFormat::Json, "an empty variable is unset");
        assert_eq!(config.log_level, "warn", "flag over variable");
        assert_eq!(config.shutdown_timeout, Duration::from_secs(5400), "variable over file");
        assert_eq!(config.file_roots, [PathBuf::from("/flag")], "a flag replaces the list whole");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_source() {
        let file = config_file(
            r#"
            lisen = "typo"
            listen = "nowhere"
            max_concurrent_backups = 0
            shutdown_timeout = "soon"
            log_format = "xml"
            file_roots = ["relative/dir"]
            data_dir = 7

            [server]
            port = 1
            "#,
        );
        let path = file.path().display().to_string();
        let variables = env(&[
            ("CELLAR_LISTEN", "x"),
            ("CELLAR_MAX_CONCURRENT_BACKUPS", "-1"),
            ("CELLAR_SHUTDOWN_TIMEOUT", "10"),
            ("CELLAR_LOG_LEVEL", "cellar=loud"),
            ("CELLAR_UNRELATED_CLIENT_SETTING", "ignored"),
        ]);
        let flags = Overrides {
            max_concurrent_backups: Some(0),
            file_roots: Some(vec![PathBuf::from("also/relative")]),
            ..Overrides::default()
        };
        let mut found = problems(load(Some(file.path()), variables, flags));
        found.sort();
        let mut expected = vec![
            format!(
                "config file {path}: unknown key 'lisen'; known keys are listen, data_dir, max_concurrent_backups, log_format, log_level, shutdown_timeout, file_roots"
            ),
            format!(
                "config file {path}: unknown key 'server'; known keys are listen, data_dir, max_concurrent_backups, log_format, log_level, shutdown_timeout, file_roots"
            ),
            format!(
                "config file {path}: listen: invalid socket address 'nowhere'; expected ip:port such as 127.0.0.1:50051"
            ),
            format!("config file {path}: max_concurrent_backups: must be at least 1"),
            format!(
                "config file {path}: shutdown_timeout: invalid duration 'soon'; expected e.g. 30s, 2m, 1h30m or 500ms"
            ),
            format!("config file {path}: log_format: unknown log format 'xml'; expected text or json"),
            format!("config file {path}: file_roots: 'relative/dir' is not an absolute path"),
            format!("config file {path}: data_dir: expected a string, found integer"),
            "CELLAR_LISTEN: invalid socket address 'x'; expected ip:port such as 127.0.0.1:50051".to_owned(),
            "CELLAR_MAX_CONCURRENT_BACKUPS: invalid number '-1'; expected a whole number".to_owned(),
            "CELLAR_SHUTDOWN_TIMEOUT: invalid duration '10'; expected e.g. 30s, 2m, 1h30m or 500ms"
                .to_owned(),
            "--max-concurrent-backups: must be at least 1".to_owned(),
            "--file-root: 'also/relative' is not an absolute path".to_owned(),
        ];
        expected.sort();
        let log_level =
            found.iter().position(|problem| problem.starts_with("CELLAR_LOG_LEVEL: invalid log filter"));
        found.remove(log_level.expect("the bad log filter is reported"));
        assert_eq!(found, expected);
    }

    #[test]
    fn the_error_lists_one_problem_a_line() {
        let error =
            load(None, env(&[("CELLAR_LISTEN", "x"), ("CELLAR_LOG_FORMAT", "xml")]), Overrides::default())
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration:\n  \
             CELLAR_LISTEN: invalid socket address 'x'; expected ip:port such as 127.0.0.1:50051\n  \
             CELLAR_LOG_FORMAT: unknown log format 'xml'; expected text or json"
        );
    }

    #[test]
    fn file_problems_name_the_file() {
        let missing = Path::new("/nonexistent/cellar.toml");
        let found = problems(load(Some(missing), env(&[]), Overrides::default()));
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("config file /nonexistent/cellar.toml: cannot read it: "), "{found:?}");

        let broken = config_file("listen = \"127.0.0.1:1\"\nmax_concurrent_backups = = 3\n");
        let found = problems(load(Some(broken.path()), env(&[]), Overrides::default()));
        assert_eq!(found.len(), 1);
        let prefix = format!("config file {}: line 2: ", broken.path().display());
        assert!(found[0].starts_with(&prefix) && !found[0].contains('\n'), "{found:?}");

        let wrong_types =
            config_file("max_concurrent_backups = \"4\"\nfile_roots = \"/srv\"\nlog_level = [1]\n");
        let found = problems(load(Some(wrong_types.path()), env(&[]), Overrides::default()));
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn out_of_range_counts_are_problems() {
        let file = config_file("max_concurrent_backups = 5000000000\n");
        let found = problems(load(Some(file.path()), env(&[]), Overrides::default()));
        assert_eq!(
            found,
            [format!(
                "config file {}: max_concurrent_backups: 5000000000 is out of range",
                file.path().display()
            )]
        );
    }

    #[test]
    fn paths_derived_from_the_data_dir() {
        let config = Config { data_dir: PathBuf::from("/var/lib/cellar"), ..Config::default() };
        assert_eq!(config.database_path(), Path::new("/var/lib/cellar/catalog.sqlite"));
        assert_eq!(config.backups_dir(), Path::new("/var/lib/cellar/backups"));
        let relative = Config::default();
        assert!(relative.backups_dir().is_absolute());
        assert!(relative.backups_dir().ends_with("cellar-data/backups"));
    }

    fn check_duration(text: &str, expected: Option<Duration>) {
        assert_eq!(parse_duration(text).ok(), expected, "{text:?}");
    }

    #[test]
    fn durations() {
        check_duration("30s", Some(Duration::from_secs(30)));
        check_duration(" 2m ", Some(Duration::from_secs(120)));
        check_duration("1h30m", Some(Duration::from_secs(5400)));
        check_duration("1d", Some(Duration::from_secs(86400)));
        check_duration("500ms", Some(Duration::from_millis(500)));
        check_duration("1m500ms", Some(Duration::from_millis(60_500)));
        check_duration("0", Some(Duration::ZERO));
        check_duration("0s", Some(Duration::ZERO));
        for bad in ["", "10", "s", "1x", "1.5s", "-1s", "1 s", "5m3", "99999999999h", "1hh"] {
            check_duration(bad, None);
        }
        assert_eq!(
            parse_duration("soon").unwrap_err(),
            "invalid duration 'soon'; expected e.g. 30s, 2m, 1h30m or 500ms"
        );
    }

    #[test]
    fn log_formats() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::Json.to_string(), "json");
    }
}
