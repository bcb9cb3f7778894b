//! The integration suite: one binary (so linking happens once). `support` is the
//! harness; `cases` holds one module per area of the contract. Every test starts its own
//! Cellar server and its own throwaway `redis-server` processes on free ports, so tests
//! run in parallel.

mod cases;
mod support;
