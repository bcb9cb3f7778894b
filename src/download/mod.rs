//! Downloads of stored backups: signed, expiring links served by Cellar's own HTTP
//! listener (for stores that cannot presign a URL: local disk, FTP, WebDAV, Azure with
//! a SAS token), and the chunked read-ahead behind DownloadBackup.
//!
//! `token.rs` signs and checks the links, `key.rs` keeps their key, `range.rs` reads
//! `Range` headers, `http.rs` is the listener, `chunks.rs` the gRPC stream's reader.

pub mod chunks;
pub mod http;
pub mod key;
pub mod range;
pub mod token;

use url::Url;

/// The path under which the listener serves links: `/download/<token>`.
pub const PATH_PREFIX: &str = "/download/";

/// Makes and checks the listener's links.
#[derive(Debug)]
pub struct Links {
    signer: token::Signer,
    base_url: Url,
}

impl Links {
    /// Links under `base_url` (the listener's public address; a path in it is kept, for a
    /// proxy that strips it), signed with `key`.
    pub fn new(key: &[u8], mut base_url: Url) -> Links {
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        base_url.set_query(None);
        base_url.set_fragment(None);
        Links { signer: token::Signer::new(key), base_url }
    }

    /// The URL granting `claims`.
    pub fn url(&self, claims: &token::Claims) -> Url {
        let mut url = self.base_url.clone();
        let path =
            format!("{}{}{}", url.path(), PATH_PREFIX.trim_start_matches('/'), self.signer.sign(claims));
        url.set_path(&path);
        url
    }

    /// The claims of a token taken from a request path, if it is valid at `now` (Unix
    /// seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<token::Claims, token::Error> {
        self.signer.verify(token, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BackupId;

    #[test]
    fn links_sit_under_the_base_url() {
        let claims =
            token::Claims { backup_id: BackupId::new(), object_key: "a/b".to_owned(), expires: i64::MAX };
        for (base, prefix) in [
            ("http://127.0.0.1:50052", "http://127.0.0.1:50052/download/"),
            ("https://backups.example.com/cellar", "https://backups.example.com/cellar/download/"),
            ("https://backups.example.com/cellar/?x=1#y", "https://backups.example.com/cellar/download/"),
        ] {
            let links = Links::new(&[7; 32], Url::parse(base).unwrap());
            let url = links.url(&claims).to_string();
            let token = url.strip_prefix(prefix).unwrap_or_else(|| panic!("{url} under {prefix}"));
            assert_eq!(links.verify(token, 0).unwrap(), claims);
        }
    }
}
