//! Tests of the FTP backend.

use super::*;
use crate::domain::ResourceName;

fn destination(uri: &str, credentials: &[(&str, &str)]) -> Destination {
    Destination::unregistered(ResourceName::parse("ftp").unwrap(), uri, credentials, &[])
}

fn storage(uri: &str, credentials: &[(&str, &str)]) -> FtpStorage {
    let url = Url::parse(uri).unwrap();
    FtpStorage::new(&url, &destination(uri, credentials), UrlPolicy::default()).unwrap()
}

#[test]
fn uris_and_credentials() {
    let from_uri = storage("ftp://back%40up:hun%3Ater2@files.example.com:2121/backups/cellar/", &[]);
    let settings = &from_uri.inner;
    assert_eq!((settings.host.as_str(), settings.port), ("files.example.com", 2121));
    assert_eq!((settings.user.as_str(), settings.password.as_str()), ("back@up", "hun:ter2"));
    assert_eq!(settings.root, "/backups/cellar");
    assert_eq!(
        from_uri.uri("db/b/dump"),
        "ftp://back%40up:****@files.example.com:2121/backups/cellar/db/b/dump"
    );
    assert!(!format!("{from_uri:?}").contains("hun"), "{from_uri:?}");

    let from_map = storage("ftp://files.example.com", &[("username", "u"), ("password", "hunter2")]);
    assert_eq!((from_map.inner.user.as_str(), from_map.inner.password.as_str()), ("u", "hunter2"));
    assert_eq!((from_map.inner.port, from_map.inner.root.as_str()), (21, ""));
    assert_eq!(from_map.path_of("a/b").unwrap(), "/a/b");
    assert!(!from_map.uri("k").contains("hunter2"), "{}", from_map.uri("k"));

    let anonymous = storage("ftp://[::1]/pub", &[]);
    assert_eq!((anonymous.inner.host.as_str(), anonymous.inner.user.as_str()), ("::1", "anonymous"));
    assert_eq!(anonymous.uri("k"), "ftp://[::1]/pub/k");

    for key in ["a/.b.partial-1", "line\nbreak"] {
        assert!(matches!(from_map.path_of(key), Err(Error::InvalidKey { .. })), "{key:?}");
    }
}

#[tokio::test]
async fn refused_hosts_and_closed_ports_never_show_the_password() {
    let refused = storage("ftp://u:hunter2@127.0.0.1:9/dir", &[]);
    let error = refused.stat("k").await.unwrap_err();
    assert!(matches!(error, Error::Refused(_)), "{error:?}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let uri = format!("ftp://u:hunter2@127.0.0.1:{port}/dir");
    let url = Url::parse(&uri).unwrap();
    let policy = UrlPolicy::new(vec![net::AllowedHost::parse("127.0.0.1").unwrap()]);
    let closed = FtpStorage::new(&url, &destination(&uri, &[]), policy).unwrap();
    let error = closed.writer("k").await.map(|_| ()).unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let text = format!("{error} {error:?}");
    assert!(!text.contains("hunter2") && text.contains("u:****@127.0.0.1"), "{text}");
}
