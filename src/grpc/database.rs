//! DatabaseService: convert, call the core, convert back.

use tonic::{Request, Response, Status};

use super::convert::{
    database_patch_from_pb, database_to_pb, list_query, new_database_from_pb, require_id, timestamp_to_pb,
    total_size,
};
use super::pb::cellar::v1 as pb;
use super::scope::{self, caller};
use super::status::{invalid_argument, to_status};
use crate::domain::list::schemas;
use crate::domain::{Database, DatabaseId};
use crate::service::Cellar;

/// Serves `cellar.v1.DatabaseService`.
pub(crate) struct DatabaseHandler {
    pub(crate) cellar: Cellar,
}

impl DatabaseHandler {
    /// The database as responses show it, with its next scheduled backup.
    async fn shown(&self, database: &Database) -> Result<pb::Database, Status> {
        let mut shown = database_to_pb(database);
        let next = self.cellar.next_backup_time(database).await.map_err(to_status)?;
        shown.next_backup_time = next.map(timestamp_to_pb);
        Ok(shown)
    }
}

#[tonic::async_trait]
impl pb::database_service_server::DatabaseService for DatabaseHandler {
    async fn create_database(
        &self,
        request: Request<pb::CreateDatabaseRequest>,
    ) -> Result<Response<pb::Database>, Status> {
        let caller = caller(&request)?;
        let (new, request_id) =
            new_database_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let database = self.cellar.create_database(new, request_id.as_deref()).await.map_err(to_status)?;
        caller.touches(format!("databases/{}", database.id));
        Ok(Response::new(self.shown(&database).await?))
    }

    async fn get_database(
        &self,
        request: Request<pb::GetDatabaseRequest>,
    ) -> Result<Response<pb::Database>, Status> {
        let caller = caller(&request)?;
        let id = require_id("id", &request.get_ref().id, DatabaseId::parse)
            .map_err(|invalid| invalid_argument(&invalid))?;
        scope::database(&caller, &self.cellar, id).await?;
        let database = self.cellar.get_database(id).await.map_err(to_status)?;
        Ok(Response::new(self.shown(&database).await?))
    }

    async fn list_databases(
        &self,
        request: Request<pb::ListDatabasesRequest>,
    ) -> Result<Response<pb::ListDatabasesResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let query = list_query(
            &schemas::DATABASES,
            request.page_size,
            &request.page_token,
            &request.filter,
            &request.order_by,
        )
        .map_err(|invalid| invalid_argument(&invalid))?;
        let page = self.cellar.list_databases(&query).await.map_err(to_status)?;
        let filtered = caller.role.is_scoped();
        let mut databases = Vec::with_capacity(page.items.len());
        for database in page.items.iter().filter(|database| caller.covers(database)) {
            databases.push(self.shown(database).await?);
        }
        Ok(Response::new(pb::ListDatabasesResponse {
            databases,
            next_page_token: page.next_page_token,
            total_size: if filtered { 0 } else { total_size(page.total_size) },
        }))
    }

    async fn update_database(
        &self,
        request: Request<pb::UpdateDatabaseRequest>,
    ) -> Result<Response<pb::Database>, Status> {
        let caller = caller(&request)?;
        let (id, patch) =
            database_patch_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        scope::database(&caller, &self.cellar, id).await?;
        let database = self.cellar.update_database(id, patch).await.map_err(to_status)?;
        Ok(Response::new(self.shown(&database).await?))
    }

    async fn delete_database(
        &self,
        request: Request<pb::DeleteDatabaseRequest>,
    ) -> Result<Response<pb::DeleteDatabaseResponse>, Status> {
        let caller = caller(&request)?;
        let id = require_id("id", &request.get_ref().id, DatabaseId::parse)
            .map_err(|invalid| invalid_argument(&invalid))?;
        scope::database(&caller, &self.cellar, id).await?;
        self.cellar.delete_database(id).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteDatabaseResponse {}))
    }
}
