//! ImportService and ExportService. ImportDatabase and ExportDatabase work; the RPCs
//! whose features have not landed yet answer UNIMPLEMENTED (the honest answer, with a
//! stable reason).

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::convert::{export_database_from_pb, import_database_from_pb, operation_to_pb};
use super::pb::cellar::v1 as pb;
use super::status::{invalid_argument, to_status, unimplemented};
use crate::service::Cellar;

/// Serves `cellar.v1.ImportService`.
pub(crate) struct ImportHandler {
    pub(crate) cellar: Cellar,
}

#[tonic::async_trait]
impl pb::import_service_server::ImportService for ImportHandler {
    async fn import_database(
        &self,
        request: Request<pb::ImportDatabaseRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let import =
            import_database_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let operation = self.cellar.import_database(import).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    async fn import_backup(
        &self,
        _request: Request<pb::ImportBackupRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        Err(unimplemented("ImportBackup"))
    }
}

/// Serves `cellar.v1.ExportService`.
pub(crate) struct ExportHandler {
    pub(crate) cellar: Cellar,
}

#[tonic::async_trait]
impl pb::export_service_server::ExportService for ExportHandler {
    async fn export_database(
        &self,
        request: Request<pb::ExportDatabaseRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let export =
            export_database_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let operation = self.cellar.export_database(export).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
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
