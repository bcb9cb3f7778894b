//! Restores a backup with Cellar's generated Rust client and waits for the operation to
//! end:
//!
//! ```sh
//! cargo run --release --example restore_backup -- http://127.0.0.1:50051 BACKUP_ID [TARGET_DATABASE_ID]
//! ```
//!
//! Prints the operation's name once it is done, and exits with 1 if the operation failed
//! (its error on standard error). `scripts/bench-redis-restore` times restores with it,
//! so that a command-line client's own start-up is not counted as the restore's time.

use std::process::ExitCode;

use cellar::grpc::pb::cellar::v1::backup_service_client::BackupServiceClient;
use cellar::grpc::pb::cellar::v1::operation::Result as Outcome;
use cellar::grpc::pb::cellar::v1::operation_service_client::OperationServiceClient;
use cellar::grpc::pb::cellar::v1::{RestoreBackupRequest, WaitOperationRequest};

/// How long one WaitOperation call waits at most before it is asked again.
const WAIT: prost_types::Duration = prost_types::Duration { seconds: 600, nanos: 0 };

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(backup_id)) = (args.next(), args.next()) else {
        eprintln!("usage: restore_backup ADDRESS BACKUP_ID [TARGET_DATABASE_ID]");
        return Ok(ExitCode::from(2));
    };
    let target_database_id = args.next().unwrap_or_default();
    let channel = tonic::transport::Endpoint::from_shared(address)?.connect().await?;
    let mut backups = BackupServiceClient::new(channel.clone());
    let mut operations = OperationServiceClient::new(channel);

    let request = RestoreBackupRequest { backup_id, target_database_id, ..Default::default() };
    let mut operation = backups.restore_backup(request).await?.into_inner();
    while !operation.done {
        let request = WaitOperationRequest { name: operation.name.clone(), timeout: Some(WAIT) };
        operation = operations.wait_operation(request).await?.into_inner();
    }
    println!("{}", operation.name);
    match operation.result {
        Some(Outcome::Error(error)) => {
            eprintln!("the restore failed: {} ({})", error.message, error.code);
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
