//! Generates the gRPC code and the reflection descriptor set from `proto/`.
//!
//! protoc comes from `protoc-bin-vendored` unless `PROTOC` names one, so a fresh machine
//! needs nothing installed.

use std::path::PathBuf;

const SECRET_BEARING_MESSAGES: [&str; 6] = [
    ".cellar.v1.Database",
    ".cellar.v1.Webhook",
    ".cellar.v1.Destination",
    ".cellar.v1.ImportDatabaseRequest",
    ".cellar.v1.ImportBackupRequest",
    ".cellar.v1.ExportDatabaseRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut protos = Vec::new();
    for dir in ["proto/cellar/v1", "proto/google/rpc"] {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|extension| extension == "proto") {
                protos.push(path);
            }
        }
    }
    protos.sort();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        // Messages that carry secrets get a hand-written, redacting Debug (src/grpc/redact.rs).
        .skip_debug(SECRET_BEARING_MESSAGES)
        // Download chunks pass from the store's reader to the wire without a copy.
        .bytes(".cellar.v1.DownloadBackupResponse.data")
        .file_descriptor_set_path(out_dir.join("cellar_descriptor.bin"))
        .compile_with_config(config, &protos, &[PathBuf::from("proto")])?;
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations; a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=src/metadata/migrations");
    Ok(())
}
