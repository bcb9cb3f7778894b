//! ImportService and ExportService: requests converted and validated, then handed to
//! the core.

use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use super::convert::{
    backup_to_pb, chunk_to_pb, download_backup_from_pb, export_backup_from_pb, export_database_from_pb,
    exported_backup_to_pb, import_backup_from_pb, import_database_from_pb, operation_to_pb,
};
use super::pb::cellar::v1 as pb;
use super::scope::{self, caller};
use super::status::{invalid_argument, to_status};
use crate::domain::DatabaseId;
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
        // The scope first: a caller outside it learns nothing from the sources' checks.
        let caller = caller(&request)?;
        if let Some(id) = DatabaseId::parse(&request.get_ref().database_id) {
            scope::database(&caller, &self.cellar, id).await?;
        }
        let import =
            import_database_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let operation = self.cellar.import_database(import).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    async fn import_backup(
        &self,
        request: Request<pb::ImportBackupRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        scope::unscoped(&caller(&request)?)?;
        let import =
            import_backup_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let operation = self.cellar.import_backup(import).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
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
        // The scope first: a caller outside it learns nothing from the location's checks.
        let caller = caller(&request)?;
        if let Some(id) = DatabaseId::parse(&request.get_ref().database_id) {
            scope::database(&caller, &self.cellar, id).await?;
        }
        let export =
            export_database_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let operation = self.cellar.export_database(export).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    async fn export_backup(
        &self,
        request: Request<pb::ExportBackupRequest>,
    ) -> Result<Response<pb::ExportBackupResponse>, Status> {
        let caller = caller(&request)?;
        let export =
            export_backup_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        scope::backup(&caller, &self.cellar, export.backup_id).await?;
        let exported = self.cellar.export_backup(export).await.map_err(to_status)?;
        Ok(Response::new(exported_backup_to_pb(&exported)))
    }

    type DownloadBackupStream =
        Pin<Box<dyn Stream<Item = Result<pb::DownloadBackupResponse, Status>> + Send>>;

    async fn download_backup(
        &self,
        request: Request<pb::DownloadBackupRequest>,
    ) -> Result<Response<Self::DownloadBackupStream>, Status> {
        let caller = caller(&request)?;
        let download =
            download_backup_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        scope::backup(&caller, &self.cellar, download.backup_id).await?;
        let download = self.cellar.download_backup(download).await.map_err(to_status)?;
        // The bounded channel is the backpressure: a slow client leaves chunks unread
        // and the reader waits.
        let mut backup = Some(backup_to_pb(&download.backup));
        let messages =
            tokio_stream::wrappers::ReceiverStream::new(download.chunks).map(move |chunk| match chunk {
                Ok(chunk) => Ok(chunk_to_pb(chunk, backup.take())),
                Err(error) => Err(to_status(error.into())),
            });
        Ok(Response::new(Box::pin(messages)))
    }
}
