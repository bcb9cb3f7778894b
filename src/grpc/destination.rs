//! DestinationService: convert, call the core, convert back.

use tonic::{Request, Response, Status};

use super::convert::{
    destination_patch_from_pb, destination_to_pb, list_query, new_destination_from_pb, require_id, total_size,
};
use super::pb::cellar::v1 as pb;
use super::scope::caller;
use super::status::{invalid_argument, to_status};
use crate::domain::DestinationId;
use crate::domain::list::schemas;
use crate::service::Cellar;

/// Serves `cellar.v1.DestinationService`.
pub(crate) struct DestinationHandler {
    pub(crate) cellar: Cellar,
}

#[tonic::async_trait]
impl pb::destination_service_server::DestinationService for DestinationHandler {
    async fn create_destination(
        &self,
        request: Request<pb::CreateDestinationRequest>,
    ) -> Result<Response<pb::Destination>, Status> {
        let caller = caller(&request)?;
        let (new, request_id) =
            new_destination_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        let destination =
            self.cellar.create_destination(new, request_id.as_deref()).await.map_err(to_status)?;
        caller.touches(format!("destinations/{}", destination.id));
        Ok(Response::new(destination_to_pb(&destination)))
    }

    async fn get_destination(
        &self,
        request: Request<pb::GetDestinationRequest>,
    ) -> Result<Response<pb::Destination>, Status> {
        let id = require_id("id", &request.get_ref().id, DestinationId::parse)
            .map_err(|invalid| invalid_argument(&invalid))?;
        caller(&request)?.touches(format!("destinations/{id}"));
        let destination = self.cellar.get_destination(id).await.map_err(to_status)?;
        Ok(Response::new(destination_to_pb(&destination)))
    }

    async fn list_destinations(
        &self,
        request: Request<pb::ListDestinationsRequest>,
    ) -> Result<Response<pb::ListDestinationsResponse>, Status> {
        caller(&request)?;
        let request = request.into_inner();
        let query = list_query(
            &schemas::DESTINATIONS,
            request.page_size,
            &request.page_token,
            &request.filter,
            &request.order_by,
        )
        .map_err(|invalid| invalid_argument(&invalid))?;
        let page = self.cellar.list_destinations(&query).await.map_err(to_status)?;
        Ok(Response::new(pb::ListDestinationsResponse {
            destinations: page.items.iter().map(destination_to_pb).collect(),
            next_page_token: page.next_page_token,
            total_size: total_size(page.total_size),
        }))
    }

    async fn update_destination(
        &self,
        request: Request<pb::UpdateDestinationRequest>,
    ) -> Result<Response<pb::Destination>, Status> {
        let caller = caller(&request)?;
        let (id, patch) =
            destination_patch_from_pb(request.into_inner()).map_err(|invalid| invalid_argument(&invalid))?;
        caller.touches(format!("destinations/{id}"));
        let destination = self.cellar.update_destination(id, patch).await.map_err(to_status)?;
        Ok(Response::new(destination_to_pb(&destination)))
    }

    async fn delete_destination(
        &self,
        request: Request<pb::DeleteDestinationRequest>,
    ) -> Result<Response<pb::DeleteDestinationResponse>, Status> {
        let id = require_id("id", &request.get_ref().id, DestinationId::parse)
            .map_err(|invalid| invalid_argument(&invalid))?;
        caller(&request)?.touches(format!("destinations/{id}"));
        self.cellar.delete_destination(id).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteDestinationResponse {}))
    }
}
