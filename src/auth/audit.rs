//! The audit log: one event per call at target `cellar::audit` saying who (token id or
//! JWT subject), with which role, asked for which permission on which resource, from
//! where, and how it ended. Tokens and secrets never appear: callers are named by their
//! configured id or subject only.

use std::net::SocketAddr;

/// One audited call.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The caller's id (`token:<id>`, `jwt:<sub>`, `anonymous`), or `-` when it could
    /// not be authenticated.
    pub caller: &'a str,
    /// Its role, once authenticated.
    pub role: Option<super::Role>,
    /// The permission asked for (the RPC's, or the listener's).
    pub permission: &'a str,
    /// The resource acted on, where the call names one.
    pub resource: Option<&'a str>,
    /// The remote address.
    pub peer: Option<SocketAddr>,
    /// How it ended: a gRPC code name (`OK`, `PERMISSION_DENIED`, ...) or an HTTP status.
    pub outcome: &'a str,
}

/// Writes the entry's event.
pub fn record(entry: Entry<'_>) {
    tracing::info!(
        target: "cellar::audit",
        caller = entry.caller,
        role = entry.role.map_or("-", super::Role::as_str),
        permission = entry.permission,
        resource = entry.resource.unwrap_or("-"),
        peer = %entry.peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string()),
        outcome = entry.outcome,
        "audit"
    );
}
