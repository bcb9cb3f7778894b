//! Authentication and permissions at the gRPC boundary, in one place: a tower layer in
//! front of every service that maps the method path to its [`Permission`] (the table
//! below covers every RPC of the proto, which a test checks), authenticates the bearer
//! token, refuses a role below the permission's level, hands the [`Caller`] to the
//! handler in the request's extensions, and writes the call's audit line once the
//! handler answered. Health and reflection stay open. A member's resource-by-resource
//! checks are in `scope.rs`, which the handlers call.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;

use super::peer::Peer;
use super::status::{permission_denied, unauthenticated};
use crate::auth::audit::{self, Entry};
use crate::auth::{Authenticator, Caller, Level, Permission};

/// Services every caller may use without a token.
const OPEN_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

const fn permission(name: &'static str, level: Level) -> Permission {
    Permission { name, level }
}

/// Every RPC's permission. An RPC missing here is refused (and a test fails).
pub const METHODS: &[(&str, Permission)] = &[
    ("/cellar.v1.DatabaseService/CreateDatabase", permission("databases.create", Level::Admin)),
    ("/cellar.v1.DatabaseService/GetDatabase", permission("databases.get", Level::Read)),
    ("/cellar.v1.DatabaseService/ListDatabases", permission("databases.list", Level::Read)),
    ("/cellar.v1.DatabaseService/UpdateDatabase", permission("databases.update", Level::Admin)),
    ("/cellar.v1.DatabaseService/DeleteDatabase", permission("databases.delete", Level::Admin)),
    ("/cellar.v1.DestinationService/CreateDestination", permission("destinations.create", Level::Admin)),
    ("/cellar.v1.DestinationService/GetDestination", permission("destinations.get", Level::Read)),
    ("/cellar.v1.DestinationService/ListDestinations", permission("destinations.list", Level::Read)),
    ("/cellar.v1.DestinationService/UpdateDestination", permission("destinations.update", Level::Admin)),
    ("/cellar.v1.DestinationService/DeleteDestination", permission("destinations.delete", Level::Admin)),
    ("/cellar.v1.BackupService/CreateBackup", permission("backups.create", Level::Data)),
    ("/cellar.v1.BackupService/GetBackup", permission("backups.get", Level::Read)),
    ("/cellar.v1.BackupService/ListBackups", permission("backups.list", Level::Read)),
    ("/cellar.v1.BackupService/UpdateBackup", permission("backups.update", Level::Data)),
    ("/cellar.v1.BackupService/DeleteBackup", permission("backups.delete", Level::Data)),
    ("/cellar.v1.BackupService/RestoreBackup", permission("backups.restore", Level::Data)),
    ("/cellar.v1.OperationService/GetOperation", permission("operations.get", Level::Read)),
    ("/cellar.v1.OperationService/ListOperations", permission("operations.list", Level::Read)),
    ("/cellar.v1.OperationService/CancelOperation", permission("operations.cancel", Level::Data)),
    ("/cellar.v1.OperationService/DeleteOperation", permission("operations.delete", Level::Data)),
    ("/cellar.v1.OperationService/WaitOperation", permission("operations.wait", Level::Read)),
    ("/cellar.v1.OperationService/WatchOperation", permission("operations.watch", Level::Read)),
    ("/cellar.v1.ImportService/ImportDatabase", permission("databases.import", Level::Data)),
    ("/cellar.v1.ImportService/ImportBackup", permission("backups.import", Level::Data)),
    ("/cellar.v1.ExportService/ExportDatabase", permission("databases.export", Level::Data)),
    ("/cellar.v1.ExportService/ExportBackup", permission("backups.export", Level::Data)),
    ("/cellar.v1.ExportService/DownloadBackup", permission("backups.download", Level::Data)),
];

/// The permission of the RPC at `path`, if it is one of Cellar's.
pub fn permission_of(path: &str) -> Option<Permission> {
    METHODS.iter().find(|(method, _)| *method == path).map(|(_, permission)| *permission)
}

/// The layer that authenticates and authorizes every call; `None` runs open (loopback
/// only: `server` refuses other addresses), every caller an admin named `anonymous`.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Option<Arc<Authenticator>>,
}

impl AuthLayer {
    /// A layer checking with `authenticator`, or open.
    pub fn new(authenticator: Option<Arc<Authenticator>>) -> AuthLayer {
        AuthLayer { authenticator }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, authenticator: self.authenticator.clone() }
    }
}

/// The service [`AuthLayer`] wraps around the routes.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Option<Arc<Authenticator>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone that was made ready is the one called (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path().to_owned();
        if OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
            return Box::pin(inner.call(request));
        }
        let peer = remote_addr(&request);
        let Some(permission) = permission_of(&path) else {
            let status = Status::unimplemented(format!("{path} is not a method of this server"));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let caller = match admit(self.authenticator.as_deref(), &request, permission) {
            Ok(caller) => caller,
            Err(refused) => {
                let (caller, status) = *refused;
                let role = caller.as_ref().map(|caller| caller.role);
                let caller_id = caller.as_ref().map_or("-", |caller| caller.id.as_str());
                let outcome = code_name(status.code());
                audit::record(Entry {
                    caller: caller_id,
                    role,
                    permission: permission.name,
                    resource: None,
                    peer,
                    outcome,
                });
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        request.extensions_mut().insert(caller.clone());
        Box::pin(async move {
            let response = inner.call(request).await?;
            // A handler's refusal comes back in the headers (trailers-only); a call that
            // answered, or started its stream, has no status there yet.
            let outcome = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|code| code.parse::<i32>().ok())
                .map_or("OK", |code| code_name(tonic::Code::from_i32(code)));
            let resource = caller.resource();
            audit::record(Entry {
                caller: &caller.id,
                role: Some(caller.role),
                permission: permission.name,
                resource: resource.as_deref(),
                peer,
                outcome,
            });
            Ok(response)
        })
    }
}

// Authenticates the call and checks the role's level; a refusal keeps the caller it
// authenticated, for the audit line.
fn admit<B>(
    authenticator: Option<&Authenticator>,
    request: &http::Request<B>,
    permission: Permission,
) -> Result<Caller, Box<(Option<Caller>, Status)>> {
    let Some(authenticator) = authenticator else {
        return Ok(Caller::anonymous(permission));
    };
    let header = request.headers().get(http::header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let subject = request.extensions().get::<Peer>().and_then(|peer| peer.client_subject.as_deref());
    let identity = authenticator
        .authenticate_call(header, subject)
        .map_err(|error| Box::new((None, unauthenticated(&error))))?;
    let caller = Caller::new(identity.id, identity.role, identity.scope, permission);
    if !caller.role.reaches(permission.level) {
        let why = format!("the {} role may not use it", caller.role);
        return Err(Box::new((Some(caller), permission_denied(permission.name, &why))));
    }
    Ok(caller)
}

fn remote_addr<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<Peer>()
        .and_then(|peer| peer.remote_addr)
        .or_else(|| extensions.get::<tonic::transport::server::TcpConnectInfo>()?.remote_addr())
}

/// The canonical name of a gRPC code, as the audit log writes it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn every_rpc_of_the_proto_has_a_permission() {
        let set = prost_types::FileDescriptorSet::decode(super::super::pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut rpcs = Vec::new();
        for file in set.file.iter().filter(|file| file.package() == "cellar.v1") {
            for service in &file.service {
                for method in &service.method {
                    rpcs.push(format!("/cellar.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        assert!(rpcs.len() >= 27, "{rpcs:?}");
        for rpc in &rpcs {
            assert!(permission_of(rpc).is_some(), "{rpc} has no permission in grpc::auth::METHODS");
        }
        let stale: Vec<_> =
            METHODS.iter().filter(|(method, _)| !rpcs.iter().any(|rpc| rpc == method)).collect();
        assert!(stale.is_empty(), "not in the proto: {stale:?}");
        let mut names: Vec<_> = METHODS.iter().map(|(_, permission)| permission.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METHODS.len(), "a permission name is used twice");
    }
}
