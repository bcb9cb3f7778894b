//! The tests, one module per area of the contract. (They live in this directory, not
//! beside `main.rs`, because Cargo would build every `tests/*.rs` as a binary of its own.)

mod admission;
mod auth;
mod auth_rs256;
mod backups;
mod catalog;
mod downloads;
mod encryption;
mod export;
mod faults;
mod grpcurl;
mod http_import;
mod import;
mod import_backup;
mod listing;
mod metrics;
mod modules;
mod mysql;
mod object_stores;
mod operations;
mod postgres;
mod process;
mod reflection;
mod remote_destinations;
mod replication_crash;
mod replication_load;
mod restore;
mod schedules;
mod secrets;
mod sql_servers;
mod tls;
mod url_safety;
mod webhooks;
