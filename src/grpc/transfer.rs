//! ImportService and ExportService: their features have not landed yet, so every RPC
//! answers UNIMPLEMENTED (the honest answer, with a stable reason).

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::pb::cellar::v1 as pb;
use super::status::unimplemented;

/// Serves `cellar.v1.ImportService`.
pub(crate) struct ImportHandler;

#[tonic::async_trait]
impl pb::import_service_server::ImportService for ImportHandler {
    async fn import_database(
        &self,
        _request: Request<pb::ImportDatabaseRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        Err(unimplemented("ImportDatabase"))
    }

    async fn import_backup(
        &self,
        _request: Request<pb::ImportBackupRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        Err(unimplemented("ImportBackup"))
    }
}

/// Serves `cellar.v1.ExportService`.
pub(crate) struct ExportHandler;

#[tonic::async_trait]
impl pb::export_service_server::ExportService for ExportHandler {
    async fn export_database(
        &self,
        _request: Request<pb::ExportDatabaseRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        Err(unimplemented("ExportDatabase"))
    }

    async fn export_backup(
        &self,
        _request: Request<pb::ExportBackupRequest>,
    ) -> Result<Response<pb::ExportBackupResponse>, Status> {
        Err(unimplemented("ExportBackup"))
    }

    type DownloadBackupStream =
        Pin<Box<dyn Stream<Item = Result<pb::DownloadBackupResponse, Status>> + Send>>;

    async fn download_backup(
        &self,
        _request: Request<pb::DownloadBackupRequest>,
    ) -> Result<Response<Self::DownloadBackupStream>, Status> {
        Err(unimplemented("DownloadBackup"))
    }
}
