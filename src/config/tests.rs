//! The configuration's sources, precedence and checks.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
}

#[test]
fn defaults_then_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cellar.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\ndata_dir = \"/file\"\nmax_concurrent_backups = 8\nlog_format = \"json\"\n",
    )
    .unwrap();
    let config = load(
        Some(&file),
        env(&[("CELLAR_DATA_DIR", "/env"), ("CELLAR_LISTEN", "127.0.0.1:2"), ("HOME", "/root")]),
        Overrides { listen: Some("127.0.0.1:3".into()), ..Overrides::default() },
    )
    .unwrap();
    assert_eq!(config.listen, "127.0.0.1:3".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("/env"));
    assert_eq!(config.max_concurrent_backups, 8);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(load(None, env(&[]), Overrides::default()).unwrap(), Config::default());
}

#[test]
fn every_problem_is_reported_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cellar.toml");
    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let error = load(
        Some(&file),
        env(&[("CELLAR_LISTEN", "nowhere"), ("CELLAR_MAX_CONCURRENT_BACKUPS", "0")]),
        Overrides {
            shutdown_timeout: Some("soon".into()),
            log_format: Some("xml".into()),
            ..Overrides::default()
        },
    )
    .unwrap_err();
    let text = error.to_string();
    assert_eq!(error.problems.len(), 5, "{text}");
    for fragment in [
        "colour",
        "CELLAR_LISTEN: 'nowhere'",
        "CELLAR_MAX_CONCURRENT_BACKUPS",
        "--shutdown-timeout",
        "--log-format",
    ] {
        assert!(text.contains(fragment), "missing {fragment} in {text}");
    }
}

#[test]
fn allow_hosts_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = |config: &Config| config.allow_hosts.iter().map(ToString::to_string).collect::<Vec<_>>();
    let file = dir.path().join("list.toml");
    std::fs::write(&file, "allow_hosts = [\"files.internal\", \"127.0.0.1:8080\"]\n").unwrap();
    let config = load(Some(&file), env(&[]), Overrides::default()).unwrap();
    assert_eq!(hosts(&config), ["files.internal", "127.0.0.1:8080"]);
    std::fs::write(&file, "allow_hosts = \"a.internal, [::1]:9000\"\n").unwrap();
    let config = load(Some(&file), env(&[]), Overrides::default()).unwrap();
    assert_eq!(hosts(&config), ["a.internal", "[::1]:9000"]);
    let config =
        load(Some(&file), env(&[("CELLAR_ALLOW_HOSTS", "env.internal ,10.0.0.5")]), Overrides::default())
            .unwrap();
    assert_eq!(hosts(&config), ["env.internal", "10.0.0.5"]);
    let flags = Overrides { allow_hosts: Some(vec!["flag.internal".into()]), ..Overrides::default() };
    let config = load(Some(&file), env(&[("CELLAR_ALLOW_HOSTS", "env.internal")]), flags).unwrap();
    assert_eq!(hosts(&config), ["flag.internal"]);
    let error = load(None, env(&[("CELLAR_ALLOW_HOSTS", "ok.internal,u@bad,x/y")]), Overrides::default())
        .unwrap_err();
    assert_eq!(error.problems.len(), 1, "{error}");
    assert!(error.problems[0].starts_with("CELLAR_ALLOW_HOSTS: 'u@bad'"), "{error}");
    assert!(error.problems[0].contains("'x/y'"), "{error}");
}

#[test]
fn download_settings() {
    let defaults = load(None, env(&[]), Overrides::default()).unwrap();
    assert_eq!(defaults.download_listen, Some(DEFAULT_DOWNLOAD_LISTEN));
    assert_eq!((defaults.download_base_url, defaults.download_key_file), (None, None));
    let config = load(
        None,
        env(&[
            ("CELLAR_DOWNLOAD_LISTEN", "0.0.0.0:8443"),
            ("CELLAR_DOWNLOAD_BASE_URL", "https://backups.example.com/cellar"),
            ("CELLAR_DOWNLOAD_KEY_FILE", "/etc/cellar/download.key"),
        ]),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.download_listen, Some("0.0.0.0:8443".parse().unwrap()));
    assert_eq!(config.download_base_url.unwrap().as_str(), "https://backups.example.com/cellar");
    assert_eq!(config.download_key_file, Some(PathBuf::from("/etc/cellar/download.key")));
    let off = Overrides { download_listen: Some(String::new()), ..Overrides::default() };
    assert_eq!(load(None, env(&[]), off).unwrap().download_listen, None);

    let error = load(
        None,
        env(&[("CELLAR_DOWNLOAD_LISTEN", "anywhere")]),
        Overrides { download_base_url: Some("https://u:pw@example.com/?k=v".into()), ..Overrides::default() },
    )
    .unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(error.problems[0].starts_with("CELLAR_DOWNLOAD_LISTEN: 'anywhere'"), "{error}");
    assert!(error.problems[1].starts_with("--download-base-url: must have no user"), "{error}");
    assert!(!error.to_string().contains("pw@"), "{error}");
    for bad in ["ftp://example.com", "not a url", "http://"] {
        let flags = Overrides { download_base_url: Some(bad.into()), ..Overrides::default() };
        assert!(load(None, env(&[]), flags).is_err(), "{bad}");
    }
}

#[test]
fn tls_files_go_together() {
    assert_eq!(load(None, env(&[]), Overrides::default()).unwrap().tls(), Ok(None));
    let config = load(
        None,
        env(&[
            ("CELLAR_TLS_CERT_FILE", "/etc/cellar/tls.crt"),
            ("CELLAR_TLS_KEY_FILE", "/etc/cellar/tls.key"),
            ("CELLAR_TLS_CLIENT_CA_FILE", "/etc/cellar/clients.crt"),
        ]),
        Overrides { tls_client_auth: Some("Optional".into()), ..Overrides::default() },
    )
    .unwrap();
    let tls = config.tls().unwrap().expect("TLS settings");
    assert_eq!(tls.client_ca_file, Some(PathBuf::from("/etc/cellar/clients.crt")));
    assert_eq!(tls.client_auth, crate::tls::ClientAuth::Optional);

    let error = load(
        None,
        env(&[("CELLAR_TLS_CERT_FILE", "/etc/cellar/tls.crt"), ("CELLAR_TLS_CLIENT_AUTH", "sometimes")]),
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.problems,
        [
            "CELLAR_TLS_CLIENT_AUTH: 'sometimes' is not required or optional",
            "tls_cert_file: needs tls_key_file"
        ]
    );
    let ca_alone = Overrides { tls_client_ca_file: Some("/ca.crt".into()), ..Overrides::default() };
    assert!(load(None, env(&[]), ca_alone).is_err());
}

#[test]
fn catalog_key_and_age_identities() {
    use crate::metadata::KeySource;
    let defaults = load(None, env(&[]), Overrides::default()).unwrap();
    assert_eq!((defaults.catalog_key, defaults.age_identity_files), (KeySource::Default, Vec::new()));
    let config = load(
        None,
        env(&[
            ("CELLAR_CATALOG_KEY", "not-shown-key"),
            ("CELLAR_AGE_IDENTITY_FILE", "/k/one.txt:/k/two.txt"),
        ]),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(config.catalog_key, KeySource::Value(crate::domain::Secret::new("not-shown-key")));
    assert_eq!(config.age_identity_files, [PathBuf::from("/k/one.txt"), PathBuf::from("/k/two.txt")]);
    assert!(!format!("{config:?}").contains("not-shown-key"));
    let flags =
        Overrides { catalog_key_file: Some("/etc/cellar/catalog.key".into()), ..Overrides::default() };
    let config = load(None, env(&[("CELLAR_CATALOG_KEY", "k")]), flags).unwrap();
    assert_eq!(config.catalog_key, KeySource::File(PathBuf::from("/etc/cellar/catalog.key")), "flags win");
    let error = load(
        None,
        env(&[("CELLAR_CATALOG_KEY", "not-shown-key"), ("CELLAR_CATALOG_KEY_FILE", "/k")]),
        Overrides::default(),
    )
    .unwrap_err();
    assert!(error.problems[0].starts_with("CELLAR_CATALOG_KEY: give a key file or a key"), "{error}");
    assert!(!error.to_string().contains("not-shown-key"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cellar.toml");
    std::fs::write(&file, "age_identity_file = \"/k/key.txt\"\ncatalog_key_file = \"/k/catalog.key\"\n")
        .unwrap();
    let config = load(Some(&file), env(&[]), Overrides::default()).unwrap();
    assert_eq!(config.age_identity_files, [PathBuf::from("/k/key.txt")]);
    assert_eq!(config.catalog_key, KeySource::File(PathBuf::from("/k/catalog.key")));
    std::fs::write(&file, "catalog_key = \"00\"\n").unwrap();
    assert!(load(Some(&file), env(&[]), Overrides::default()).is_err(), "the key itself never in the file");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
    assert_eq!(parse_duration("soon"), None);
    assert_eq!(parse_duration("-1s"), None);
}
