//! Metrics for Prometheus: backup freshness per database, operations by kind and
//! outcome, bytes moved, the queue ([`Metrics`]), served at `/metrics` ([`http`]).

pub mod http;
mod registry;

pub use registry::Metrics;
