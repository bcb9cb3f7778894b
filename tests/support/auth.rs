//! Clients that send a bearer token, and the `[auth]` configuration files the
//! authentication tests start `cellar serve` with.

use std::net::SocketAddr;

use cellar::grpc::pb::cellar::v1::backup_service_client::BackupServiceClient;
use cellar::grpc::pb::cellar::v1::database_service_client::DatabaseServiceClient;
use cellar::grpc::pb::cellar::v1::destination_service_client::DestinationServiceClient;
use cellar::grpc::pb::cellar::v1::export_service_client::ExportServiceClient;
use cellar::grpc::pb::cellar::v1::import_service_client::ImportServiceClient;
use cellar::grpc::pb::cellar::v1::operation_service_client::OperationServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::PATIENCE;

/// Adds `authorization: Bearer <token>` to every call (nothing for `None`).
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type With = InterceptedService<Channel, Bearer>;

/// Typed clients of one server, all sending one token.
#[derive(Clone)]
pub(crate) struct AuthedClients {
    channel: Channel,
    bearer: Bearer,
}

impl AuthedClients {
    /// Clients of the server at `addr` sending `token` (none for `None`).
    pub(crate) async fn connect(addr: SocketAddr, token: Option<&str>) -> AuthedClients {
        let endpoint = Channel::from_shared(format!("http://{addr}")).expect("endpoint");
        let channel = tokio::time::timeout(PATIENCE, endpoint.connect())
            .await
            .expect("cellar accepts a connection in time")
            .expect("connect to cellar");
        let bearer = Bearer(token.map(|token| format!("Bearer {token}").parse().expect("an ASCII token")));
        AuthedClients { channel, bearer }
    }

    pub(crate) fn databases(&self) -> DatabaseServiceClient<With> {
        DatabaseServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub(crate) fn destinations(&self) -> DestinationServiceClient<With> {
        DestinationServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub(crate) fn backups(&self) -> BackupServiceClient<With> {
        BackupServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub(crate) fn operations(&self) -> OperationServiceClient<With> {
        OperationServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub(crate) fn imports(&self) -> ImportServiceClient<With> {
        ImportServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub(crate) fn exports(&self) -> ExportServiceClient<With> {
        ExportServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }
}

/// One `[[auth.tokens]]` entry: the hash of `token`, never the token.
pub(crate) fn token_entry(id: &str, token: &str, role: &str, scope: Option<&str>) -> String {
    let hash = cellar::auth::hash_token(token);
    let scope = scope.map(|scope| format!("scope = {scope}\n")).unwrap_or_default();
    format!("[[auth.tokens]]\nid = \"{id}\"\nsha256 = \"{hash}\"\nrole = \"{role}\"\n{scope}")
}
