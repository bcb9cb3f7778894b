//! OperationService: reads, cancels, waits for and streams operations.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::convert::{duration_from_pb, list_query, operation_to_pb, require_id, total_size};
use super::pb::cellar::v1 as pb;
use super::scope::{self, Visible, caller};
use super::status::{invalid_argument, to_status};
use crate::domain::list::schemas;
use crate::domain::{Invalid, OperationId};
use crate::service::Cellar;

/// WaitOperation's timeout when the request gives none.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The longest WaitOperation waits.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Serves `cellar.v1.OperationService`.
pub(crate) struct OperationHandler {
    pub(crate) cellar: Cellar,
}

fn operation_id(name: &str) -> Result<OperationId, Status> {
    require_id("name", name, OperationId::parse).map_err(|invalid| invalid_argument(&invalid))
}

#[tonic::async_trait]
impl pb::operation_service_server::OperationService for OperationHandler {
    async fn get_operation(
        &self,
        request: Request<pb::GetOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let id = operation_id(&request.get_ref().name)?;
        scope::operation(&caller(&request)?, &self.cellar, id).await?;
        let operation = self.cellar.operations().get(id).await.map_err(|error| to_status(error.into()))?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    async fn list_operations(
        &self,
        request: Request<pb::ListOperationsRequest>,
    ) -> Result<Response<pb::ListOperationsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let query = list_query(
            &schemas::OPERATIONS,
            request.page_size,
            &request.page_token,
            &request.filter,
            &request.order_by,
        )
        .map_err(|invalid| invalid_argument(&invalid))?;
        let page = self.cellar.operations().list(&query).await.map_err(|error| to_status(error.into()))?;
        let mut visible = Visible::new(&caller, &self.cellar);
        let operations = visible.retain(page.items, |operation| operation.database_id).await?;
        Ok(Response::new(pb::ListOperationsResponse {
            operations: operations.iter().map(operation_to_pb).collect(),
            next_page_token: page.next_page_token,
            total_size: if visible.filters() { 0 } else { total_size(page.total_size) },
        }))
    }

    async fn cancel_operation(
        &self,
        request: Request<pb::CancelOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let id = operation_id(&request.get_ref().name)?;
        scope::operation(&caller(&request)?, &self.cellar, id).await?;
        let operation = self.cellar.operations().cancel(id).await.map_err(|error| to_status(error.into()))?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    async fn delete_operation(
        &self,
        request: Request<pb::DeleteOperationRequest>,
    ) -> Result<Response<pb::DeleteOperationResponse>, Status> {
        let id = operation_id(&request.get_ref().name)?;
        scope::operation(&caller(&request)?, &self.cellar, id).await?;
        self.cellar.operations().delete(id).await.map_err(|error| to_status(error.into()))?;
        Ok(Response::new(pb::DeleteOperationResponse {}))
    }

    async fn wait_operation(
        &self,
        request: Request<pb::WaitOperationRequest>,
    ) -> Result<Response<pb::Operation>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let mut invalid = Invalid::default();
        let id = invalid.check(require_id("name", &request.name, OperationId::parse));
        let timeout = match &request.timeout {
            Some(timeout) => {
                duration_from_pb("timeout", timeout, &mut invalid).map(|timeout| timeout.min(MAX_WAIT))
            }
            None => Some(DEFAULT_WAIT),
        };
        let (Some(id), Some(timeout), true) = (id, timeout, invalid.is_empty()) else {
            return Err(invalid_argument(&invalid));
        };
        scope::operation(&caller, &self.cellar, id).await?;
        let operation =
            self.cellar.operations().wait(id, timeout).await.map_err(|error| to_status(error.into()))?;
        Ok(Response::new(operation_to_pb(&operation)))
    }

    type WatchOperationStream = Pin<Box<dyn Stream<Item = Result<pb::Operation, Status>> + Send>>;

    async fn watch_operation(
        &self,
        request: Request<pb::WatchOperationRequest>,
    ) -> Result<Response<Self::WatchOperationStream>, Status> {
        let id = operation_id(&request.get_ref().name)?;
        scope::operation(&caller(&request)?, &self.cellar, id).await?;
        let stream = self.cellar.operations().watch(id).await.map_err(|error| to_status(error.into()))?;
        Ok(Response::new(Box::pin(stream.map(|operation| Ok(operation_to_pb(&operation))))))
    }
}
