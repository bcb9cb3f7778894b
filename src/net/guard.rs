//! The [`UrlPolicy`] enforced inside the HTTP client: a DNS resolver that refuses names
//! resolving to internal addresses and pins the addresses it checked (so a second,
//! rebound answer is never used), and a redirect policy that checks every hop.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::policy::UrlPolicy;

/// The most redirects one request follows.
pub const MAX_REDIRECTS: usize = 5;

/// Resolves through the system resolver (via tokio), then checks the answer against the
/// policy. The connector dials exactly the addresses returned here.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<UrlPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<UrlPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            policy.check_resolved(&host, &addresses)?;
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// Follows at most [`MAX_REDIRECTS`] redirects, each to a URL the policy allows (IP
/// literals and ports are checked here; names again when they resolve).
pub fn redirect_policy(policy: Arc<UrlPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        match policy.check_url(attempt.url()) {
            Ok(_) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}
