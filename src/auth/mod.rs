//! Who may call what: callers authenticated by a bearer token (a configured token, whose
//! SHA-256 alone is kept, or a JWT verified against a configured key), their roles and
//! scopes, the permission each call needs, and the audit log of what they did.
//!
//! Nothing here knows the transport: `grpc::auth` maps RPCs to [`Permission`]s and
//! enforces them, the HTTP listeners ask an [`Authenticator`] directly.

pub mod audit;
pub mod config;
pub mod http;
mod jwt;
mod role;
mod token;

pub use role::{Caller, Level, Permission, Role, Scope};
pub use token::{Authenticator, Error, hash_token};
