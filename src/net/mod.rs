//! Outbound connections to URLs that users give: which hosts they may reach (`policy`),
//! and the HTTP client hooks that enforce it when names resolve and on every redirect
//! (`guard`).

pub mod guard;
pub mod policy;

pub use policy::{AllowedHost, Error, Reach, UrlPolicy};
