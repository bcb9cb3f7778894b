//! The `cellar` binary: the server (`cellar serve`) and, in time, the client commands.

/// mimalloc: restores hand every value from the thread that reads the file to the one
/// that sends it, a pattern the system allocator serves slowly (its arenas lock). Built
/// without its transparent huge pages (`no_thp`): they rounded every thread's first
/// touch of its arena up to 2 MiB, 11 MiB of an idle server's 33 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cellar::cli::run()
}
