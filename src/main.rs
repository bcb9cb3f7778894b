//! The `cellar` binary: the server (`cellar serve`) and, in time, the client commands.

fn main() -> std::process::ExitCode {
    cellar::cli::run()
}
