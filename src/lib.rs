//! Cellar: backup, import and export for self-run Redis, PostgreSQL and MySQL/MariaDB,
//! served over gRPC. Modules in reading order: the domain vocabulary, then the parts
//! that move data, then the runtime that drives them, then the transports.

pub mod auth;
pub mod config;
pub mod domain;
pub mod keyfile;

pub mod engine;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod schedule;
pub mod storage;

pub mod jobs;
pub mod notify;
pub mod operations;
pub mod service;

pub mod cli;
pub mod download;
pub mod grpc;
pub mod server;
pub mod tls;
