//! Which http(s) hosts a user-given URL may reach: internal addresses (loopback, private,
//! link-local, cloud metadata, ...) are refused unless the operator allowed the host.
//!
//! The checks are pure: [`UrlPolicy::check_url`] looks at a URL before a request (and
//! before every redirect), [`UrlPolicy::check_resolved`] at the addresses a name resolved
//! to, right before connecting. `net::guard` wires both into the HTTP client.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use crate::domain::redact_uri;

/// Host names that reach cloud metadata services, refused like internal addresses.
const METADATA_HOSTS: [&str; 2] = ["metadata.google.internal", "metadata.goog"];

/// Why a URL may not be fetched. Messages never hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The URL is not an http(s) URL with a host.
    #[error("{url}: {problem}")]
    Invalid {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The URL's host is, or resolves to, an address this server does not reach for users.
    #[error("{host} is not allowed: {why} (add it to allow_hosts / --allow-host to allow it)")]
    NotAllowed {
        /// The host (and port) asked for.
        host: String,
        /// What kind of address it is.
        why: String,
    },
}

/// One allow-list entry: a host name or IP address, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: AllowedName,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedName {
    Domain(String),
    Ip(IpAddr),
}

impl AllowedHost {
    /// Parses `name`, `name:port`, `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]` or `[::1]:80`.
    pub fn parse(text: &str) -> Result<AllowedHost, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("an allowed host must not be empty".to_owned());
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(AllowedHost { host: AllowedName::Ip(ip), port: None });
        }
        // Anything else reads like the authority of a URL.
        let url = Url::parse(&format!("http://{text}/"))
            .map_err(|_| format!("'{text}' is not a host name or IP address, with an optional :port"))?;
        let plain = url.username().is_empty() && url.password().is_none() && url.path() == "/";
        let (Some(host), true) = (url.host(), plain && url.query().is_none()) else {
            return Err(format!("'{text}' is not a host name or IP address, with an optional :port"));
        };
        let port = explicit_port(text, &url);
        Ok(AllowedHost { host: AllowedName::from_host(&host), port })
    }

    fn matches_host(&self, host: &AllowedName) -> bool {
        self.host == *host
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (AllowedName::Domain(name), None) => f.write_str(name),
            (AllowedName::Domain(name), Some(port)) => write!(f, "{name}:{port}"),
            (AllowedName::Ip(ip), None) => write!(f, "{ip}"),
            (AllowedName::Ip(ip), Some(port)) => write!(f, "{}", SocketAddr::new(*ip, port)),
        }
    }
}

// `url` drops a port equal to the scheme's default; `host:80` must still mean port 80.
fn explicit_port(text: &str, url: &Url) -> Option<u16> {
    url.port().or_else(|| {
        let after_host = text.rsplit_once(']').map_or(text, |(_, rest)| rest);
        after_host.rsplit_once(':').and_then(|(_, port)| port.parse().ok())
    })
}

impl AllowedName {
    fn from_host(host: &Host<&str>) -> AllowedName {
        match host {
            Host::Domain(name) => AllowedName::Domain(normalize(name)),
            Host::Ipv4(ip) => AllowedName::Ip(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => AllowedName::Ip(IpAddr::V6(*ip)),
        }
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// What an allowed URL may reach once its host is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The host is on the allow-list: any address it resolves to.
    Anywhere,
    /// Public addresses only; names are checked again when they resolve.
    PublicOnly,
}

/// The allow-list and the checks built on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    allowed: Vec<AllowedHost>,
}

impl UrlPolicy {
    /// A policy allowing internal addresses only for the hosts in `allowed`.
    pub fn new(allowed: Vec<AllowedHost>) -> Self {
        UrlPolicy { allowed }
    }

    /// Checks an http(s) URL before a request or a redirect: the scheme and host, the
    /// allow-list, and (without DNS) IP-literal hosts and metadata names. A host named
    /// in the allow-list only with other ports is refused on this one, so that the
    /// allow-list can never widen to ports it does not name.
    pub fn check_url(&self, url: &Url) -> Result<Reach, Error> {
        let invalid =
            |problem: &str| Error::Invalid { url: redact_uri(url.as_str()), problem: problem.to_owned() };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("only http:// and https:// URLs can be fetched"));
        }
        let Some(host) = url.host() else { return Err(invalid("the host is missing")) };
        let Some(port) = url.port_or_known_default() else { return Err(invalid("the port is missing")) };
        let name = AllowedName::from_host(&host);
        let listed: Vec<&AllowedHost> =
            self.allowed.iter().filter(|entry| entry.matches_host(&name)).collect();
        if listed.iter().any(|entry| entry.port.is_none_or(|allowed| allowed == port)) {
            return Ok(Reach::Anywhere);
        }
        let shown = format!("{}:{port}", url_host(&host));
        if !listed.is_empty() {
            let ports: Vec<String> = listed.iter().map(|entry| entry.to_string()).collect();
            return Err(Error::NotAllowed {
                host: shown,
                why: format!("only {} is allowed", ports.join(", ")),
            });
        }
        match name {
            AllowedName::Ip(ip) => match internal_kind(ip) {
                Some(kind) => {
                    Err(Error::NotAllowed { host: shown, why: format!("{ip} is a {kind} address") })
                }
                None => Ok(Reach::PublicOnly),
            },
            AllowedName::Domain(domain) if METADATA_HOSTS.contains(&domain.as_str()) => {
                Err(Error::NotAllowed { host: shown, why: "it is a cloud metadata endpoint".to_owned() })
            }
            AllowedName::Domain(_) => Ok(Reach::PublicOnly),
        }
    }

    /// Whether a host name is on the allow-list (with any port): its addresses are then
    /// not filtered when it resolves. Ports are enforced by [`UrlPolicy::check_url`],
    /// which runs first for every request and redirect.
    pub fn allows_name(&self, name: &str) -> bool {
        let name = AllowedName::Domain(normalize(name));
        self.allowed.iter().any(|entry| entry.matches_host(&name))
    }

    /// Checks the addresses a name resolved to: every one must be public (or the name on
    /// the allow-list), so that a name resolving to an internal address is refused
    /// rather than half-used.
    pub fn check_resolved(&self, name: &str, addresses: &[SocketAddr]) -> Result<(), Error> {
        if self.allows_name(name) {
            return Ok(());
        }
        if METADATA_HOSTS.contains(&normalize(name).as_str()) {
            return Err(Error::NotAllowed {
                host: name.to_owned(),
                why: "it is a cloud metadata endpoint".to_owned(),
            });
        }
        for address in addresses {
            if let Some(kind) = internal_kind(address.ip()) {
                return Err(Error::NotAllowed {
                    host: name.to_owned(),
                    why: format!("it resolves to {}, a {kind} address", address.ip()),
                });
            }
        }
        Ok(())
    }
}

fn url_host(host: &Host<&str>) -> String {
    match host {
        Host::Ipv6(ip) => format!("[{ip}]"),
        other => other.to_string(),
    }
}

/// The kind of internal address `ip` is, or `None` for an address on the public
/// internet. IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) IPv6
/// addresses are judged as the IPv4 address they carry.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => internal_kind_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped().or_else(|| nat64_embedded(ip)) {
            Some(embedded) => internal_kind_v4(embedded),
            None => internal_kind_v6(ip),
        },
    }
}

// The IPv4 address inside the well-known NAT64 prefix 64:ff9b::/96.
fn nat64_embedded(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = ip.segments();
    if segments[..6] != [0x64, 0xff9b, 0, 0, 0, 0] {
        return None;
    }
    let [a, b] = segments[6].to_be_bytes();
    let [c, d] = segments[7].to_be_bytes();
    Some(Ipv4Addr::new(a, b, c, d))
}

fn internal_kind_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("cloud metadata")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("broadcast or multicast")
    } else {
        None
    }
}

fn internal_kind_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("broadcast or multicast")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_kind(ip: &str, expected: Option<&str>) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(internal_kind(parsed), expected, "{ip}");
    }

    #[test]
    fn internal_addresses_are_classified() {
        for (ip, kind) in [
            ("127.0.0.1", Some("loopback")),
            ("127.0.0.2", Some("loopback")),
            ("::1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("172.31.255.255", Some("private")),
            ("192.168.1.1", Some("private")),
            ("fc00::1", Some("private (unique local)")),
            ("fd12:3456::1", Some("private (unique local)")),
            ("169.254.1.1", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("169.254.169.254", Some("cloud metadata")),
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("unspecified")),
            ("::", Some("unspecified")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("255.255.255.255", Some("broadcast or multicast")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.1", Some("private")),
            ("64:ff9b::7f00:1", Some("loopback")),
            ("64:ff9b::a9fe:a9fe", Some("cloud metadata")),
            ("64:ff9b::808:808", None),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("100.128.0.1", None),
            ("2001:4860:4860::8888", None),
            ("fec0::1", None),
        ] {
            check_kind(ip, kind);
        }
    }

    fn policy(allowed: &[&str]) -> UrlPolicy {
        UrlPolicy::new(allowed.iter().map(|entry| AllowedHost::parse(entry).unwrap()).collect())
    }

    fn check(policy: &UrlPolicy, url: &str, expected: Result<Reach, &str>) {
        let result = policy.check_url(&Url::parse(url).unwrap());
        match (result, expected) {
            (Ok(reach), Ok(expected)) => assert_eq!(reach, expected, "{url}"),
            (Err(error), Err(fragment)) => {
                let text = error.to_string();
                assert!(text.contains(fragment), "{url}: {text} lacks {fragment}");
                assert!(!text.contains("hunter2"), "{text}");
            }
            (other, expected) => panic!("{url}: got {other:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn urls_are_checked_against_the_allow_list() {
        let open = policy(&[]);
        check(&open, "https://files.example.com/a.rdb", Ok(Reach::PublicOnly));
        check(&open, "http://8.8.8.8/a.rdb", Ok(Reach::PublicOnly));
        check(&open, "http://127.0.0.1:8080/a", Err("127.0.0.1 is a loopback address"));
        check(&open, "http://[::1]/a", Err("loopback"));
        check(&open, "http://u:hunter2@169.254.169.254/latest", Err("cloud metadata"));
        check(&open, "http://metadata.google.internal/x", Err("metadata"));
        check(&open, "http://METADATA.google.internal./x", Err("metadata"));
        check(&open, "http://[::ffff:7f00:1]/x", Err("loopback"));
        check(&open, "ftp://u:hunter2@files.example.com/x", Err("only http"));

        let listed = policy(&["127.0.0.1:8080", "localhost", "[::1]", "Files.Internal:443"]);
        check(&listed, "http://127.0.0.1:8080/a", Ok(Reach::Anywhere));
        check(&listed, "http://127.0.0.1:9090/a", Err("only 127.0.0.1:8080 is allowed"));
        check(&listed, "http://127.0.0.2:8080/a", Err("loopback"));
        check(&listed, "http://localhost:1234/a", Ok(Reach::Anywhere));
        check(&listed, "http://[::1]:5/a", Ok(Reach::Anywhere));
        check(&listed, "https://files.internal/a", Ok(Reach::Anywhere));
        check(&listed, "http://files.internal/a", Err("only files.internal:443 is allowed"));
        assert!(listed.allows_name("LOCALHOST"));
        assert!(listed.allows_name("files.internal"));
        assert!(!listed.allows_name("example.com"));
    }

    #[test]
    fn resolved_addresses_must_all_be_public() {
        let open = policy(&[]);
        let public: SocketAddr = "93.184.216.34:0".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(open.check_resolved("example.com", &[public]), Ok(()));
        let error = open.check_resolved("rebind.example", &[public, loopback]).unwrap_err();
        assert!(error.to_string().contains("resolves to 127.0.0.1, a loopback address"), "{error}");
        assert!(open.check_resolved("metadata.google.internal", &[public]).is_err());
        assert_eq!(policy(&["localhost:1"]).check_resolved("localhost", &[loopback]), Ok(()));
    }

    #[test]
    fn allow_list_entries() {
        for (text, shown) in [
            ("localhost", "localhost"),
            ("Example.COM:8080", "example.com:8080"),
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("[::1]:443", "[::1]:443"),
            ("files.internal:443", "files.internal:443"),
        ] {
            assert_eq!(AllowedHost::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for bad in ["", "http://x", "a/b", "u@host", "host:port", "host:99999", "a b"] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
