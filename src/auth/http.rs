//! The bearer check of the HTTP listeners (metrics, downloads): authenticate the
//! `authorization` header, check the role's level, and audit a refusal. The listener
//! turns a [`Refusal`] into 401 (with `WWW-Authenticate: Bearer`) or 403.

use std::net::SocketAddr;

use super::audit::{self, Entry};
use super::{Authenticator, Caller, Permission};

/// Why an HTTP request was refused.
#[derive(Debug)]
pub enum Refusal {
    /// No valid token: 401.
    Unauthenticated(super::Error),
    /// A role below the permission's level: 403.
    Forbidden(String),
}

/// Admits a request carrying `authorization`, or says why not (and audits that).
pub fn admit(
    authenticator: &Authenticator,
    authorization: Option<&str>,
    permission: Permission,
    peer: SocketAddr,
) -> Result<Caller, Refusal> {
    let refused = |caller: Option<&Caller>, outcome: &str| {
        audit::record(Entry {
            caller: caller.map_or("-", |caller| caller.id.as_str()),
            role: caller.map(|caller| caller.role),
            permission: permission.name,
            resource: None,
            peer: Some(peer),
            outcome,
        })
    };
    let identity = match authenticator.authenticate(authorization) {
        Ok(identity) => identity,
        Err(error) => {
            refused(None, "401");
            return Err(Refusal::Unauthenticated(error));
        }
    };
    let caller = Caller::new(identity.id, identity.role, identity.scope, permission);
    if !caller.role.reaches(permission.level) {
        refused(Some(&caller), "403");
        return Err(Refusal::Forbidden(format!(
            "permission {} denied: the {} role may not use it",
            permission.name, caller.role
        )));
    }
    Ok(caller)
}
