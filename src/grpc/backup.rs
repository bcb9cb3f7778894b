//! BackupService: convert, call the core, convert back.

use tonic::{Request, Response, Status};

use super::convert::{
    backup_patch_from_pb, backup_to_pb, create_backup_from_pb, list_query, operation_to_pb,
    request_id_from_pb, require_id, restore_backup_from_pb, total_size,
};
use super::pb::cellar::v1 as pb;
use super::scope::{self, Visible, caller};
use super::status::{invalid_argument, to_status};
use crate::domain::list::schemas;
use crate::domain::{BackupId, Invalid};
use crate::service::Cellar;

/// Serves `cellar.v1.BackupService`.
pub(crate) struct BackupHandler {
    pub(crate) cellar: Cellar,
}

#[tonic::async_trait]
impl pb::backup_service_server::BackupService for BackupHandler {
    async fn create_backup(
        &self,
        request: Request<pb::CreateBackupRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let caller = caller(&request)?;
        let create =
            create_backup_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        scope::database(&caller, &self.cellar, create.database_id).await?;
        let operation = self.cellar.create_backup(create).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    async fn get_backup(
        &self,
        request: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let caller = caller(&request)?;
        let id = require_id("id", &request.get_ref().id, BackupId::parse)
            .map_err(|invalid| invalid_argument(&invalid))?;
        scope::backup(&caller, &self.cellar, id).await?;
        let backup = self.cellar.get_backup(id).await.map_err(to_status)?;
        Ok(Response::new(backup_to_pb(&backup)))
    }

    async fn list_backups(
        &self,
        request: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let query = list_query(
            &schemas::BACKUPS,
            request.page_size,
            &request.page_token,
            &request.filter,
            &request.order_by,
        )
        .map_err(|invalid| invalid_argument(&invalid))?;
        let page = self.cellar.list_backups(&query).await.map_err(to_status)?;
        let mut visible = Visible::new(&caller, &self.cellar);
        let backups = visible.retain(page.items, |backup| backup.database_id).await?;
        Ok(Response::new(pb::ListBackupsResponse {
            backups: backups.iter().map(backup_to_pb).collect(),
            next_page_token: page.next_page_token,
            total_size: if visible.filters() { 0 } else { total_size(page.total_size) },
        }))
    }

    async fn update_backup(
        &self,
        request: Request<pb::UpdateBackupRequest>,
    ) -> Result<Response<pb::Backup>, Status> {
        let caller = caller(&request)?;
        let (id, patch) =
            backup_patch_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        scope::backup(&caller, &self.cellar, id).await?;
        let backup = self.cellar.update_backup(id, patch).await.map_err(to_status)?;
        Ok(Response::new(backup_to_pb(&backup)))
    }

    async fn delete_backup(
        &self,
        request: Request<pb::DeleteBackupRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut invalid = Invalid::default();
        let request_id = request_id_from_pb("request_id", &request.request_id, &mut invalid);
        let id = invalid.check(require_id("id", &request.id, BackupId::parse));
        let id = match (id, invalid.is_empty()) {
            (Some(id), true) => id,
            _ => return Err(invalid_argument(&invalid)),
        };
        scope::backup(&caller, &self.cellar, id).await?;
        let operation = self.cellar.delete_backup(id, request_id).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    async fn restore_backup(
        &self,
        request: Request<pb::RestoreBackupRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let caller = caller(&request)?;
        let restore =
            restore_backup_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        scope::backup(&caller, &self.cellar, restore.backup_id).await?;
        if let Some(target) = restore.target_database_id {
            scope::database(&caller, &self.cellar, target).await?;
        }
        let operation = self.cellar.restore_backup(restore).await.map_err(to_status)?;
        Ok(Response::new(operation_to_pb(&operation)))
    }
}
