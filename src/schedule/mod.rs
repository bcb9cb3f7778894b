//! Scheduled backups and what is kept of them: a policy's `schedule` ([`Schedule`]) and
//! its count-based retention ([`retention`]).

pub mod retention;
mod spec;

pub use spec::Schedule;
