//! Where an object-store destination points: `s3://`, `gs://`, `abs://` and `az://` URIs
//! with their options and credentials, parsed and checked in this one place.
//!
//! Settings come from, in decreasing priority: the destination's write-only
//! `credentials` (for secrets) or `options`; the URI (its user info, its query string);
//! then the cloud's standard environment, which [`super::object`] reads through each
//! `object_store` builder's `from_env()`. Error messages name the field at fault and
//! never repeat a secret.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use url::Url;

use super::Error;
use crate::domain::{Destination, Secret};

/// The credential keys of `s3://` destinations.
pub const S3_CREDENTIALS: &[&str] = &["access_key_id", "secret_access_key", "session_token"];
/// The option keys of `s3://` destinations.
pub const S3_OPTIONS: &[&str] = &["endpoint", "region", "allow_http", "path_style", "virtual_hosted_style"];
/// The credential keys of `gs://` destinations.
pub const GCS_CREDENTIALS: &[&str] = &["service_account_key", "access_token"];
/// The option keys of `gs://` destinations (`allow_http` for a test server named by
/// the key's `gcs_base_url`).
pub const GCS_OPTIONS: &[&str] = &["allow_http"];
/// The credential keys of `abs://` and `az://` destinations: `account_name` (or
/// `account`), `account_key` (or `access_key`), `sas_token`.
pub const AZURE_CREDENTIALS: &[&str] = &["account_name", "account_key", "sas_token", "account", "access_key"];
/// The option keys of `abs://` and `az://` destinations.
pub const AZURE_OPTIONS: &[&str] = &["account", "endpoint", "allow_http", "use_emulator"];

/// An object-store location: the store, the bucket (or container), the prefix every key
/// goes under, and how to reach and authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLocation {
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// `/`-separated, without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
    /// Which store, with its settings.
    pub store: StoreSettings,
}

/// The settings of each kind of store. Fields left `None` come from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// Amazon S3 or an S3-compatible store.
    S3 {
        /// `endpoint`: the base URL of an S3-compatible store.
        endpoint: Option<String>,
        /// `region`.
        region: Option<String>,
        /// `allow_http`: plain-text HTTP to the endpoint.
        allow_http: bool,
        /// `virtual_hosted_style` (or `path_style` = its opposite): `bucket.host/key`
        /// instead of `host/bucket/key`.
        virtual_hosted_style: Option<bool>,
        /// `access_key_id`, from the credentials or the URI's user name.
        access_key_id: Option<Secret>,
        /// `secret_access_key`, from the credentials or the URI's password.
        secret_access_key: Option<Secret>,
        /// `session_token`, for temporary credentials.
        session_token: Option<Secret>,
    },
    /// Google Cloud Storage.
    Gcs {
        /// `service_account_key`: the service account's JSON key file, whole.
        service_account_key: Option<Secret>,
        /// `access_token`: an OAuth 2 access token, used as it is (it is not refreshed).
        access_token: Option<Secret>,
        /// `allow_http`.
        allow_http: bool,
    },
    /// Azure Blob Storage.
    Azure {
        /// The storage account: the host of `abs://`, else `account`.
        account: Option<String>,
        /// `access_key`: the account key (base64), or the user name of `abs://`.
        access_key: Option<Secret>,
        /// `sas_token`: a shared access signature query string.
        sas_token: Option<Secret>,
        /// `endpoint`: the account's blob service URL, for emulators and sovereign clouds.
        endpoint: Option<String>,
        /// `allow_http`.
        allow_http: bool,
        /// `use_emulator`: Azurite at its default address.
        use_emulator: bool,
    },
}

/// Which field of a destination an [`Error::InvalidDestination`] message from this
/// module is about: `"options"`, `"credentials"` or `"uri"` (every message names its
/// field first).
pub fn field_of(message: &str) -> &'static str {
    let message = message.trim_start_matches("invalid destination uri: ");
    if ["option", "unknown option"].iter().any(|start| message.starts_with(start)) {
        "options"
    } else if ["credential", "unknown credential", "give credential"]
        .iter()
        .any(|start| message.starts_with(start))
    {
        "credentials"
    } else {
        "uri"
    }
}

/// Checks a destination's object-store settings the way `storage::open` will read
/// them; the error is the field at fault (`uri`, `options` or `credentials`) and the
/// problem, which never repeats a secret. Other schemes pass.
pub fn check_settings(
    uri: &str,
    credentials: &BTreeMap<String, Secret>,
    options: &BTreeMap<String, String>,
) -> Result<(), (&'static str, String)> {
    match ObjectLocation::parse_parts(uri, credentials, options) {
        Ok(_) => Ok(()),
        Err(error) => {
            let message = error.to_string();
            let problem = message.trim_start_matches("invalid destination uri: ").to_owned();
            Err((field_of(&message), problem))
        }
    }
}

impl ObjectLocation {
    /// Parses an `s3://`, `gs://`, `abs://` or `az://` destination. `Ok(None)` for
    /// other schemes.
    pub fn parse(destination: &Destination) -> Result<Option<ObjectLocation>, Error> {
        ObjectLocation::parse_parts(&destination.uri, &destination.credentials, &destination.options)
    }

    /// [`ObjectLocation::parse`] of a destination's parts.
    pub fn parse_parts(
        uri: &str,
        credentials: &BTreeMap<String, Secret>,
        options: &BTreeMap<String, String>,
    ) -> Result<Option<ObjectLocation>, Error> {
        let url = Url::parse(uri.trim()).map_err(|error| invalid(format!("not a valid URI: {error}")))?;
        let scheme = url.scheme().to_owned();
        let (credential_keys, option_keys) = match scheme.as_str() {
            "s3" => (S3_CREDENTIALS, S3_OPTIONS),
            "gs" => (GCS_CREDENTIALS, GCS_OPTIONS),
            "abs" | "az" => (AZURE_CREDENTIALS, AZURE_OPTIONS),
            _ => return Ok(None),
        };
        if url.fragment().is_some() {
            return Err(invalid(format!("{scheme} URIs take no #fragment")));
        }
        let host = decode(url.host_str().unwrap_or_default(), "host")?;
        if host.is_empty() {
            return Err(invalid(format!("{scheme} URIs need a bucket, container or account")));
        }
        let settings = Settings::gather(credentials, options, &url, credential_keys, option_keys)?;
        let path = decode(url.path(), "path")?;
        let location = match scheme.as_str() {
            "s3" => s3(&url, host, &path, &settings)?,
            "gs" => gcs(&url, host, &path, &settings)?,
            "abs" => abs(&url, host, &path, &settings)?,
            _ => az(&url, host, &path, &settings)?,
        };
        Ok(Some(location))
    }

    /// Parses the URI of one object (an import source such as
    /// `s3://KEY_ID:SECRET@bucket/dumps/a.rdb.gz?region=eu-west-1`): its options from
    /// the query, its credentials from the user info or the environment. Returns the
    /// location of the object's directory and the object's key in it; `Ok(None)` for
    /// other schemes. `credentials` (keys as a destination's) come before the user info.
    pub fn parse_object_uri(
        uri: &str,
        credentials: &BTreeMap<String, Secret>,
    ) -> Result<Option<(ObjectLocation, String)>, Error> {
        let Some(mut location) = ObjectLocation::parse_parts(uri, credentials, &BTreeMap::new())? else {
            return Ok(None);
        };
        let (prefix, key) = match location.prefix.rsplit_once('/') {
            Some((prefix, key)) => (prefix.to_owned(), key.to_owned()),
            None => (String::new(), location.prefix.clone()),
        };
        if key.is_empty() {
            return Err(invalid("the URI names a bucket or container, not an object"));
        }
        location.prefix = prefix;
        Ok(Some((location, key)))
    }

    /// The `endpoint` option, if any: the host a client will connect to instead of the
    /// store's public one.
    pub fn endpoint(&self) -> Option<&str> {
        match &self.store {
            StoreSettings::S3 { endpoint, .. } | StoreSettings::Azure { endpoint, .. } => endpoint.as_deref(),
            StoreSettings::Gcs { .. } => None,
        }
    }

    /// The location as a URI without credentials: `s3://bucket/prefix`,
    /// `abs://account/container/prefix`, ...
    pub fn display_uri(&self) -> String {
        let base = match &self.store {
            StoreSettings::S3 { .. } => format!("s3://{}", self.bucket),
            StoreSettings::Gcs { .. } => format!("gs://{}", self.bucket),
            StoreSettings::Azure { account: Some(account), .. } => {
                format!("abs://{account}/{}", self.bucket)
            }
            StoreSettings::Azure { account: None, .. } => format!("az://{}", self.bucket),
        };
        if self.prefix.is_empty() { base } else { format!("{base}/{}", self.prefix) }
    }

    /// Every secret value in the settings, to scrub from error messages.
    pub fn secrets(&self) -> Vec<String> {
        let secrets: Vec<&Option<Secret>> = match &self.store {
            StoreSettings::S3 { access_key_id, secret_access_key, session_token, .. } => {
                vec![access_key_id, secret_access_key, session_token]
            }
            StoreSettings::Gcs { service_account_key, access_token, .. } => {
                vec![service_account_key, access_token]
            }
            StoreSettings::Azure { access_key, sas_token, .. } => vec![access_key, sas_token],
        };
        secrets
            .into_iter()
            .flatten()
            .map(|secret| secret.expose().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// The options (query string, then `options` over it) and credentials of a destination,
/// checked against the keys its scheme knows.
struct Settings {
    options: BTreeMap<String, String>,
    credentials: BTreeMap<String, Secret>,
}

impl Settings {
    fn gather(
        credentials: &BTreeMap<String, Secret>,
        given_options: &BTreeMap<String, String>,
        url: &Url,
        credential_keys: &[&str],
        option_keys: &[&str],
    ) -> Result<Settings, Error> {
        let scheme = url.scheme();
        let mut options = BTreeMap::new();
        for (key, value) in url.query_pairs() {
            options.insert(key.into_owned(), value.into_owned());
        }
        options.extend(given_options.iter().map(|(key, value)| (key.clone(), value.clone())));
        if let Some(unknown) = options.keys().find(|key| !option_keys.contains(&key.as_str())) {
            return Err(invalid(format!(
                "unknown option '{unknown}' for {scheme} destinations; known: {}",
                known(option_keys)
            )));
        }
        if let Some(unknown) = credentials.keys().find(|key| !credential_keys.contains(&key.as_str())) {
            return Err(invalid(format!(
                "unknown credential '{unknown}' for {scheme} destinations; known: {}",
                known(credential_keys)
            )));
        }
        Ok(Settings { options, credentials: credentials.clone() })
    }

    fn option(&self, key: &str) -> Option<String> {
        self.options.get(key).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.option(key).map(|value| value.to_ascii_lowercase()).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(_) => Err(invalid(format!("option {key} must be true or false"))),
        }
    }

    /// The Azure account key: `account_key`, or its alias `access_key`.
    fn azure_key(&self) -> Option<Secret> {
        self.credential("account_key").or_else(|| self.credential("access_key"))
    }

    fn credential(&self, key: &str) -> Option<Secret> {
        self.credentials.get(key).filter(|secret| !secret.expose().trim().is_empty()).cloned()
    }

    /// The `endpoint` option: an http(s) URL without credentials; http only with
    /// `allow_http`.
    fn endpoint(&self, allow_http: bool) -> Result<Option<String>, Error> {
        let Some(text) = self.option("endpoint") else { return Ok(None) };
        let endpoint =
            Url::parse(&text).map_err(|error| invalid(format!("option endpoint is not a URL: {error}")))?;
        match endpoint.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(invalid("option endpoint is http:// but option allow_http is not true")),
            other => return Err(invalid(format!("option endpoint must be http(s), not '{other}'"))),
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(invalid("option endpoint must not hold credentials: use credentials"));
        }
        Ok(Some(text.trim_end_matches('/').to_owned()))
    }
}

fn s3(url: &Url, bucket: String, path: &str, settings: &Settings) -> Result<ObjectLocation, Error> {
    let allow_http = settings.flag("allow_http")?.unwrap_or(false);
    let virtual_hosted_style = match (settings.flag("virtual_hosted_style")?, settings.flag("path_style")?) {
        (Some(virtual_hosted), Some(path_style)) if virtual_hosted == path_style => {
            return Err(invalid("options path_style and virtual_hosted_style contradict each other"));
        }
        (Some(virtual_hosted), _) => Some(virtual_hosted),
        (None, path_style) => path_style.map(|path_style| !path_style),
    };
    let uri_key_id = decode(url.username(), "user name")?;
    let uri_secret = decode(url.password().unwrap_or_default(), "password")?;
    let access_key_id = settings
        .credential("access_key_id")
        .or_else(|| (!uri_key_id.is_empty()).then(|| Secret::new(uri_key_id)));
    let secret_access_key = settings
        .credential("secret_access_key")
        .or_else(|| (!uri_secret.is_empty()).then(|| Secret::new(uri_secret)));
    match (&access_key_id, &secret_access_key) {
        (Some(_), None) => {
            return Err(invalid("credential access_key_id is set but secret_access_key is not"));
        }
        (None, Some(_)) => {
            return Err(invalid("credential secret_access_key is set but access_key_id is not"));
        }
        _ => {}
    }
    let session_token = settings.credential("session_token");
    if session_token.is_some() && access_key_id.is_none() {
        return Err(invalid("credential session_token needs access_key_id and secret_access_key"));
    }
    Ok(ObjectLocation {
        bucket,
        prefix: prefix_of(path)?,
        store: StoreSettings::S3 {
            endpoint: settings.endpoint(allow_http)?,
            region: settings.option("region"),
            allow_http,
            virtual_hosted_style,
            access_key_id,
            secret_access_key,
            session_token,
        },
    })
}

fn gcs(url: &Url, bucket: String, path: &str, settings: &Settings) -> Result<ObjectLocation, Error> {
    no_user_info(url, "credential service_account_key")?;
    let service_account_key = settings.credential("service_account_key");
    if let Some(key) = &service_account_key {
        // Checked here so that a typo fails when the destination is opened, not on the
        // first upload; serde's message names the field, not the value.
        serde_json::from_str::<serde_json::Value>(key.expose())
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| invalid("credential service_account_key is not a JSON object"))?;
    }
    let allow_http = settings.flag("allow_http")?.unwrap_or(false);
    let access_token = settings.credential("access_token");
    let store = StoreSettings::Gcs { service_account_key, access_token, allow_http };
    Ok(ObjectLocation { bucket, prefix: prefix_of(path)?, store })
}

/// `abs://KEY@ACCOUNT/container/prefix`, the form Redis Cloud uses: the account key
/// (percent-encoded: base64 holds `/` and `+`) is the user name.
fn abs(url: &Url, account: String, path: &str, settings: &Settings) -> Result<ObjectLocation, Error> {
    if url.password().is_some() {
        return Err(invalid(
            "abs URIs take the account key alone before '@': abs://KEY@ACCOUNT/container/prefix",
        ));
    }
    let uri_key = decode(url.username(), "user name")?;
    let path = path.trim_start_matches('/');
    let (container, rest) = path.split_once('/').unwrap_or((path, ""));
    if container.is_empty() {
        return Err(invalid("abs URIs need a container: abs://KEY@ACCOUNT/container/prefix"));
    }
    let access_key = settings.azure_key().or_else(|| (!uri_key.is_empty()).then(|| Secret::new(uri_key)));
    azure(container.to_owned(), Some(account), access_key, rest, settings)
}

/// `az://container/prefix`, the account in credentials, options or the environment.
fn az(url: &Url, container: String, path: &str, settings: &Settings) -> Result<ObjectLocation, Error> {
    no_user_info(url, "credentials account_name and account_key")?;
    let account = settings.credential("account_name").or_else(|| settings.credential("account"));
    let account =
        account.map(|account| account.expose().trim().to_owned()).or_else(|| settings.option("account"));
    azure(container, account, settings.azure_key(), path, settings)
}

fn azure(
    container: String,
    account: Option<String>,
    access_key: Option<Secret>,
    path: &str,
    settings: &Settings,
) -> Result<ObjectLocation, Error> {
    let sas_token = settings.credential("sas_token");
    if access_key.is_some() && sas_token.is_some() {
        return Err(invalid("give credential account_key or sas_token, not both"));
    }
    let allow_http = settings.flag("allow_http")?.unwrap_or(false);
    Ok(ObjectLocation {
        bucket: container,
        prefix: prefix_of(path)?,
        store: StoreSettings::Azure {
            account,
            access_key,
            sas_token,
            endpoint: settings.endpoint(allow_http)?,
            allow_http,
            use_emulator: settings.flag("use_emulator")?.unwrap_or(false),
        },
    })
}

fn no_user_info(url: &Url, instead: &str) -> Result<(), Error> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(());
    }
    Err(invalid(format!("{} URIs take no credentials before '@': use {instead}", url.scheme())))
}

/// The path of the URI as a key prefix: clean segments, no leading or trailing `/`.
fn prefix_of(path: &str) -> Result<String, Error> {
    let prefix = path.trim_matches('/');
    if prefix.is_empty() {
        return Ok(String::new());
    }
    super::check_key(prefix).map_err(|error| match error {
        Error::InvalidKey { reason, .. } => invalid(format!("the prefix in the path is not clean: {reason}")),
        other => other,
    })?;
    Ok(prefix.to_owned())
}

fn decode(text: &str, part: &str) -> Result<String, Error> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| invalid(format!("the {part} of the URI is not UTF-8 once decoded")))
}

fn known(keys: &[&str]) -> String {
    if keys.is_empty() { "none".to_owned() } else { keys.join(", ") }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidDestination(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResourceName;

    fn destination(uri: &str, credentials: &[(&str, &str)], options: &[(&str, &str)]) -> Destination {
        Destination::unregistered(ResourceName::parse("test").unwrap(), uri, credentials, options)
    }

    fn parse(uri: &str, credentials: &[(&str, &str)], options: &[(&str, &str)]) -> ObjectLocation {
        ObjectLocation::parse(&destination(uri, credentials, options))
            .unwrap_or_else(|error| panic!("{uri}: {error}"))
            .unwrap_or_else(|| panic!("{uri}: not an object store"))
    }

    /// Parses and expects an error containing `expected` and none of the secrets.
    fn check_error(uri: &str, credentials: &[(&str, &str)], options: &[(&str, &str)], expected: &str) {
        match ObjectLocation::parse(&destination(uri, credentials, options)) {
            Err(error @ Error::InvalidDestination(_)) => {
                let message = error.to_string();
                assert!(message.contains(expected), "{uri}: {message:?} should contain {expected:?}");
                for secret in ["hunter2", "s3cr3t", "K3y"] {
                    assert!(!message.contains(secret), "{uri}: {message:?} shows a secret");
                }
            }
            other => panic!("{uri}: expected an invalid destination, got {other:?}"),
        }
    }

    #[test]
    fn other_schemes_are_not_object_stores() {
        for uri in ["file:///var/backups", "ftp://u:p@host/dir", "https://host/dir"] {
            assert_eq!(ObjectLocation::parse(&destination(uri, &[], &[])).unwrap(), None, "{uri}");
        }
    }

    #[test]
    fn s3_uris() {
        let location = parse("s3://bucket/some/prefix/", &[], &[]);
        assert_eq!((location.bucket.as_str(), location.prefix.as_str()), ("bucket", "some/prefix"));
        assert_eq!(location.display_uri(), "s3://bucket/some/prefix");
        assert_eq!(
            location.store,
            StoreSettings::S3 {
                endpoint: None,
                region: None,
                allow_http: false,
                virtual_hosted_style: None,
                access_key_id: None,
                secret_access_key: None,
                session_token: None,
            }
        );
        assert_eq!(parse("s3://bucket", &[], &[]).prefix, "");

        let location = parse(
            "s3://bucket/p?endpoint=http://127.0.0.1:9000&allow_http=true&region=eu-west-1",
            &[("access_key_id", "AKID"), ("secret_access_key", "s3cr3t"), ("session_token", "tok")],
            &[("path_style", "false"), ("region", "us-east-2")],
        );
        let StoreSettings::S3 {
            endpoint,
            region,
            allow_http,
            virtual_hosted_style,
            access_key_id,
            secret_access_key,
            session_token,
        } = &location.store
        else {
            panic!("not s3")
        };
        assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(region.as_deref(), Some("us-east-2"), "options win over the query");
        assert!(*allow_http);
        assert_eq!(*virtual_hosted_style, Some(true));
        assert_eq!(access_key_id.as_ref().map(Secret::expose), Some("AKID"));
        assert_eq!(secret_access_key.as_ref().map(Secret::expose), Some("s3cr3t"));
        assert_eq!(session_token.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(location.display_uri(), "s3://bucket/p", "no query, no credentials");
        let mut secrets = location.secrets();
        secrets.sort();
        assert_eq!(secrets, ["AKID", "s3cr3t", "tok"]);
    }

    #[test]
    fn s3_credentials_from_the_uri_and_credentials_win() {
        let location = parse("s3://AKID:s3cr%2Ft@bucket/p", &[], &[]);
        let StoreSettings::S3 { access_key_id, secret_access_key, .. } = &location.store else { panic!() };
        assert_eq!(access_key_id.as_ref().map(Secret::expose), Some("AKID"));
        assert_eq!(secret_access_key.as_ref().map(Secret::expose), Some("s3cr/t"), "percent-decoded");
        assert_eq!(location.display_uri(), "s3://bucket/p");

        let location =
            parse("s3://AKID:old@bucket/p", &[("access_key_id", "NEW"), ("secret_access_key", "new")], &[]);
        let StoreSettings::S3 { access_key_id, secret_access_key, .. } = &location.store else { panic!() };
        assert_eq!(access_key_id.as_ref().map(Secret::expose), Some("NEW"));
        assert_eq!(secret_access_key.as_ref().map(Secret::expose), Some("new"));
    }

    #[test]
    fn gcs_uris() {
        let location =
            parse("gs://bucket/a/b", &[("service_account_key", r#"{"type": "service_account"}"#)], &[]);
        assert_eq!((location.bucket.as_str(), location.prefix.as_str()), ("bucket", "a/b"));
        assert_eq!(location.display_uri(), "gs://bucket/a/b");
        assert!(matches!(
            location.store,
            StoreSettings::Gcs { service_account_key: Some(_), access_token: None, allow_http: false }
        ));
        let location = parse("gs://bucket", &[("access_token", "ya29.token")], &[("allow_http", "true")]);
        let StoreSettings::Gcs { service_account_key, access_token, allow_http } = &location.store else {
            panic!()
        };
        assert_eq!((service_account_key, allow_http), (&None, &true));
        assert_eq!(access_token.as_ref().map(Secret::expose), Some("ya29.token"));
        assert_eq!(location.secrets(), ["ya29.token"]);
    }

    #[test]
    fn azure_uris() {
        // The Redis Cloud form: the key, percent-encoded, before the account.
        let location = parse("abs://K3y%2Fpart%3D%3D@account/container/a/b", &[], &[]);
        assert_eq!((location.bucket.as_str(), location.prefix.as_str()), ("container", "a/b"));
        assert_eq!(location.display_uri(), "abs://account/container/a/b");
        let StoreSettings::Azure { account, access_key, sas_token, endpoint, allow_http, use_emulator } =
            &location.store
        else {
            panic!("not azure")
        };
        assert_eq!(account.as_deref(), Some("account"));
        assert_eq!(access_key.as_ref().map(Secret::expose), Some("K3y/part=="));
        assert_eq!((sas_token, endpoint, allow_http, use_emulator), (&None, &None, &false, &false));

        let location = parse(
            "az://container/p",
            &[("account", "devstoreaccount1"), ("access_key", "K3y")],
            &[("endpoint", "http://127.0.0.1:10000/devstoreaccount1"), ("allow_http", "true")],
        );
        assert_eq!((location.bucket.as_str(), location.prefix.as_str()), ("container", "p"));
        assert_eq!(location.display_uri(), "abs://devstoreaccount1/container/p");
        let StoreSettings::Azure { account, endpoint, allow_http, .. } = &location.store else { panic!() };
        assert_eq!(account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:10000/devstoreaccount1"));
        assert!(*allow_http);

        let location = parse("az://c", &[("account_name", "acct"), ("account_key", "K3y")], &[]);
        let StoreSettings::Azure { account, access_key, .. } = &location.store else { panic!() };
        assert_eq!(account.as_deref(), Some("acct"));
        assert_eq!(access_key.as_ref().map(Secret::expose), Some("K3y"));

        let location = parse("az://container", &[("sas_token", "sv=2022&sig=abc")], &[]);
        assert_eq!(location.display_uri(), "az://container", "the account comes from the environment");
        assert!(matches!(&location.store, StoreSettings::Azure { sas_token: Some(_), account: None, .. }));
    }

    /// Credentials or options, as written in a test.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn errors_name_the_field_and_never_a_secret() {
        let cases: &[(&str, Pairs, Pairs, &str)] = &[
            ("s3://bucket/p", &[("secret_key", "hunter2")], &[], "unknown credential 'secret_key'"),
            ("s3://bucket/p", &[], &[("endpont", "http://x")], "unknown option 'endpont'"),
            ("s3://bucket/p?regoin=x", &[], &[], "unknown option 'regoin'"),
            ("s3://bucket/p", &[("access_key_id", "AKID")], &[], "secret_access_key is not"),
            ("s3://bucket/p", &[("secret_access_key", "hunter2")], &[], "access_key_id is not"),
            ("s3://AKID@bucket/p", &[], &[], "secret_access_key is not"),
            ("s3://bucket/p", &[], &[("allow_http", "maybe")], "option allow_http must be true or false"),
            ("s3://bucket/p", &[], &[("endpoint", "http://127.0.0.1:9000")], "allow_http is not true"),
            ("s3://bucket/p", &[], &[("endpoint", "ftp://h")], "option endpoint must be http(s)"),
            ("s3://bucket/p", &[], &[("endpoint", "https://u:hunter2@h")], "must not hold credentials"),
            ("s3://bucket/p", &[], &[("path_style", "true"), ("virtual_hosted_style", "true")], "contradict"),
            ("s3://bucket/a//b", &[], &[], "the prefix in the path is not clean"),
            ("gs://u:hunter2@bucket/p", &[], &[], "use credential service_account_key"),
            ("gs://bucket/p", &[("service_account_key", "hunter2 not json")], &[], "not a JSON object"),
            ("gs://bucket/p", &[], &[("region", "x")], "known: allow_http"),
            ("abs://K3y@account", &[], &[], "abs URIs need a container"),
            ("abs://account:K3y@account/c", &[], &[], "the account key alone"),
            ("az://hunter2:s3cr3t@container/p", &[], &[], "use credentials account_name and account_key"),
            ("az://c/p", &[("access_key", "K3y"), ("sas_token", "s3cr3t")], &[], "not both"),
            ("s3://bucket/p#hunter2", &[], &[], "no #fragment"),
        ];
        for (uri, credentials, options, expected) in cases {
            check_error(uri, credentials, options, expected);
        }
    }

    #[test]
    fn object_uris_split_into_a_location_and_a_key() {
        let check = |uri: &str, display: &str, key: &str| {
            let (location, parsed_key) =
                ObjectLocation::parse_object_uri(uri, &BTreeMap::new()).unwrap().unwrap();
            assert_eq!((location.display_uri().as_str(), parsed_key.as_str()), (display, key), "{uri}");
        };
        check("s3://bucket/dumps/a.rdb.gz?region=eu-west-1", "s3://bucket/dumps", "a.rdb.gz");
        check("s3://AKID:s3cr3t@bucket/a.rdb", "s3://bucket", "a.rdb");
        check("gs://bucket/x/y/z.rdb", "gs://bucket/x/y", "z.rdb");
        check("abs://K3y@account/container/dump.rdb", "abs://account/container", "dump.rdb");
        assert_eq!(ObjectLocation::parse_object_uri("https://host/a.rdb", &BTreeMap::new()).unwrap(), None);
        for bad in ["s3://bucket", "s3://bucket/", "abs://K3y@account/container"] {
            let error = ObjectLocation::parse_object_uri(bad, &BTreeMap::new()).unwrap_err().to_string();
            assert!(error.contains("not an object") || error.contains("need a container"), "{bad}: {error}");
        }
        let (location, _) = ObjectLocation::parse_object_uri(
            "s3://b/k?endpoint=http://10.0.0.1:9000&allow_http=true",
            &BTreeMap::new(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(location.endpoint(), Some("http://10.0.0.1:9000"));
    }

    #[test]
    fn errors_say_which_field_they_are_about() {
        let cases: &[(&str, Pairs, Pairs, &str)] = &[
            ("s3://b/p", &[("nope", "x")], &[], "credentials"),
            ("s3://b/p", &[("access_key_id", "x")], &[], "credentials"),
            ("az://c/p", &[("account_key", "x"), ("sas_token", "y")], &[], "credentials"),
            ("s3://b/p", &[], &[("nope", "x")], "options"),
            ("s3://b/p", &[], &[("allow_http", "maybe")], "options"),
            ("s3://b/p", &[], &[("path_style", "true"), ("virtual_hosted_style", "true")], "options"),
            ("s3://b/a//b", &[], &[], "uri"),
            ("abs://K3y@account", &[], &[], "uri"),
        ];
        for (uri, credentials, options, field) in cases {
            let error = ObjectLocation::parse(&destination(uri, credentials, options)).unwrap_err();
            assert_eq!(field_of(&error.to_string()), *field, "{uri}: {error}");
        }
    }
}
