//! `cellar hash-token`: prints the SHA-256 an `[[auth.tokens]]` entry stores, so that
//! the token itself is never written into a configuration file. The token is read from
//! standard input (not an argument, which `ps` and shell history would show); with
//! `--generate`, a new random token is made and printed with its hash.

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;

use base64::Engine as _;

/// Flags of `cellar hash-token`.
#[derive(Debug, clap::Args)]
pub(super) struct HashTokenArgs {
    /// Make a new random token (32 bytes, base64url) and print it and its hash.
    #[arg(long)]
    generate: bool,
}

/// Runs the command.
pub(super) fn run(args: HashTokenArgs) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = if args.generate {
        let mut bytes = [0_u8; 32];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
            eprintln!("cellar: cannot read random bytes for a token");
            return ExitCode::FAILURE;
        }
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let hash = crate::auth::hash_token(&token);
        writeln!(out, "token:  {token}\nsha256: {hash}")
    } else {
        let mut line = String::new();
        if let Err(error) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("cellar: cannot read the token from standard input: {error}");
            return ExitCode::FAILURE;
        }
        let token = line.trim_end_matches(['\r', '\n']);
        if token.trim().is_empty() {
            eprintln!("cellar: no token on standard input (try: printf %s \"$TOKEN\" | cellar hash-token)");
            return ExitCode::from(2);
        }
        writeln!(out, "{}", crate::auth::hash_token(token))
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cellar: cannot write the hash: {error}");
            ExitCode::FAILURE
        }
    }
}
