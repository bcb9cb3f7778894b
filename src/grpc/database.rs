//! DatabaseService: convert, call the core, convert back.

use tonic::{Request, Response, Status};

use super::convert::{
    database_patch_from_pb, database_to_pb, list_query, new_database_from_pb, require_id, total_size,
};
use super::pb::cellar::v1 as pb;
use super::status::{invalid_argument, to_status};
use crate::domain::DatabaseId;
use crate::domain::list::schemas;
use crate::service::Cellar;

/// Serves `cellar.v1.DatabaseService`.
pub(crate) struct DatabaseHandler {
    pub(crate) cellar: Cellar,
}

#[tonic::async_trait]
impl pb::database_service_server::DatabaseService for DatabaseHandler {
    async fn create_database(
        &self,
        request: Request<pb::CreateDatabaseRequest>,
    ) -> Result<Response<pb::Database>, Status> {
        let (new, request_id) =
            new_database_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let database = self.cellar.create_database(new, request_id.as_deref()).await.map_err(to_status)?;
        Ok(Response::new(database_to_pb(&database)))
    }

    async fn get_database(
        &self,
        request: Request<pb::GetDatabaseRequest>,
    ) -> Result<Response<pb::Database>, Status> {
        let id = require_id("id", &request.get_ref().id, DatabaseId::parse)
            .map_err(|invalid| invalid_argument(&invalid))?;
        let database = self.cellar.get_database(id).await.map_err(to_status)?;
        Ok(Response::new(database_to_pb(&database)))
    }

    async fn list_databases(
        &self,
        request: Request<pb::ListDatabasesRequest>,
    ) -> Result<Response<pb::ListDatabasesResponse>, Status> {
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
        Ok(Response::new(pb::ListDatabasesResponse {
            databases: page.items.iter().map(database_to_pb).collect(),
            next_page_token: page.next_page_token,
            total_size: total_size(page.total_size),
        }))
    }

    async fn update_database(
        &self,
        request: Request<pb::UpdateDatabaseRequest>,
    ) -> Result<Response<pb::Database>, Status> {
        let (id, patch) =
            database_patch_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let database = self.cellar.update_database(id, patch).await.map_err(to_status)?;
        Ok(Response::new(database_to_pb(&database)))
    }

    async fn delete_database(
        &self,
        request: Request<pb::DeleteDatabaseRequest>,
    ) -> Result<Response<pb::DeleteDatabaseResponse>, Status> {
        let id = require_id("id", &request.get_ref().id, DatabaseId::parse)
            .map_err(|invalid| invalid_argument(&invalid))?;
        self.cellar.delete_database(id).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteDatabaseResponse {}))
    }
}
