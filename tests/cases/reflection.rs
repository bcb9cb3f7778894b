//! Reflection in both protocol versions (grpcurl 1.8 speaks only v1alpha; newer clients
//! v1), including the `google.rpc` detail types errors carry; and health.

use tonic_reflection::pb::v1 as reflection_v1;
use tonic_reflection::pb::v1alpha as reflection_v1alpha;

use crate::support::TestServer;

const SERVICES: [&str; 6] = [
    "cellar.v1.BackupService",
    "cellar.v1.DatabaseService",
    "cellar.v1.DestinationService",
    "cellar.v1.ExportService",
    "cellar.v1.ImportService",
    "cellar.v1.OperationService",
];

async fn ask_v1(
    server: &TestServer,
    request: reflection_v1::server_reflection_request::MessageRequest,
) -> reflection_v1::server_reflection_response::MessageResponse {
    let mut client = reflection_v1::server_reflection_client::ServerReflectionClient::new(server.channel());
    let request =
        reflection_v1::ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let mut responses =
        client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("one reflection answer");
    response.message_response.expect("an answer, not an empty message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_lists_every_service_and_describes_error_details() {
    use reflection_v1::server_reflection_request::MessageRequest;
    use reflection_v1::server_reflection_response::MessageResponse;
    let server = TestServer::start().await;

    let MessageResponse::ListServicesResponse(listed) =
        ask_v1(&server, MessageRequest::ListServices(String::new())).await
    else {
        panic!("ListServices answered something else");
    };
    let names: Vec<&str> = listed.service.iter().map(|service| service.name.as_str()).collect();
    for expected in SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(names.contains(expected), "{expected} missing from {names:?}");
    }

    for symbol in
        ["google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.RetryInfo", "cellar.v1.Operation"]
    {
        let answer = ask_v1(&server, MessageRequest::FileContainingSymbol(symbol.to_owned())).await;
        match answer {
            MessageResponse::FileDescriptorResponse(files) => {
                assert!(!files.file_descriptor_proto.is_empty(), "no descriptor for {symbol}")
            }
            other => panic!("{symbol} is not described: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_every_service() {
    use reflection_v1alpha::server_reflection_request::MessageRequest;
    use reflection_v1alpha::server_reflection_response::MessageResponse;
    let server = TestServer::start().await;
    let mut client =
        reflection_v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel());
    let request = reflection_v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(listed)) =
        responses.message().await.unwrap().and_then(|response| response.message_response)
    else {
        panic!("ListServices answered something else");
    };
    let names: Vec<&str> = listed.service.iter().map(|service| service.name.as_str()).collect();
    for expected in SERVICES {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_serves_the_whole_server_and_each_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let server = TestServer::start().await;
    let mut client = HealthClient::new(server.channel());
    for service in ["", "cellar.v1.BackupService", "cellar.v1.OperationService"] {
        let request = HealthCheckRequest { service: service.to_owned() };
        let status = client.check(request).await.unwrap().into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "health of '{service}'");
    }
}
