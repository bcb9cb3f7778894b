//! The `cellar` binary: the server (`cellar serve`) and, in time, the client commands.

/// mimalloc: restores hand every value from the thread that reads the file to the one
/// that sends it, a pattern the system allocator serves slowly (its arenas lock).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cellar::cli::run()
}
