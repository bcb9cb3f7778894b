//! The gRPC transport: generated code, one handler file per service, conversions and
//! error mapping. Only this module (and the CLI) knows protobuf types.

/// Code generated from `proto/`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod pb {
    /// The `cellar.v1` package.
    pub mod cellar {
        /// Version 1 of the API.
        pub mod v1 {
            tonic::include_proto!("cellar.v1");
        }
    }
    /// The `google.rpc` detail types, for reflection.
    pub mod google {
        /// `google.rpc`.
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
    /// The encoded descriptor set served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cellar_descriptor");
}

pub mod auth;
mod backup;
mod convert;
mod database;
mod destination;
mod operation;
pub mod peer;
mod redact;
mod scope;
mod status;
mod transfer;

use std::time::Duration;

use tonic::service::Routes;

use crate::service::Cellar;
use pb::cellar::v1::backup_service_server::BackupServiceServer;
use pb::cellar::v1::database_service_server::DatabaseServiceServer;
use pb::cellar::v1::destination_service_server::DestinationServiceServer;
use pb::cellar::v1::export_service_server::ExportServiceServer;
use pb::cellar::v1::import_service_server::ImportServiceServer;
use pb::cellar::v1::operation_service_server::OperationServiceServer;

/// The full set of services: the six Cellar services, health and reflection (v1 and
/// v1alpha). Health reports SERVING until `health` is told otherwise.
pub async fn routes(
    cellar: Cellar,
) -> Result<(Routes, tonic_health::server::HealthReporter), tonic_reflection::server::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<DatabaseServiceServer<database::DatabaseHandler>>().await;
    health.set_serving::<DestinationServiceServer<destination::DestinationHandler>>().await;
    health.set_serving::<BackupServiceServer<backup::BackupHandler>>().await;
    health.set_serving::<OperationServiceServer<operation::OperationHandler>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(DatabaseServiceServer::new(database::DatabaseHandler { cellar: cellar.clone() }))
        .add_service(DestinationServiceServer::new(destination::DestinationHandler {
            cellar: cellar.clone(),
        }))
        .add_service(BackupServiceServer::new(backup::BackupHandler { cellar: cellar.clone() }))
        .add_service(OperationServiceServer::new(operation::OperationHandler { cellar: cellar.clone() }))
        .add_service(ImportServiceServer::new(transfer::ImportHandler { cellar: cellar.clone() }))
        .add_service(ExportServiceServer::new(transfer::ExportHandler { cellar }));
    Ok((routes, health))
}

/// How often HTTP/2 keepalive pings go to idle clients (long watches stay healthy).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
