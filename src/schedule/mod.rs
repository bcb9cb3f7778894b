//! Scheduled backups and what is kept of them: a policy's `schedule` ([`Schedule`]),
//! its count-based retention ([`retention`]), and the task that runs them and sweeps
//! expired backups ([`runner`]).

pub mod retention;
pub mod runner;
mod spec;

pub use spec::Schedule;
