//! Authentication and roles against a real `cellar serve` with `[auth]` configured:
//! every RPC for every kind of caller (a table-driven matrix), member scopes filtering
//! lists, JWTs (HS256 and EdDSA: valid, expired, not yet valid, wrong audience,
//! tampered), the metrics listener's bearer check, start-up refusals, and a scan of the
//! server's logs for every test secret.

use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use tonic::Code;

use crate::support::auth::{AuthedClients, token_entry};
use crate::support::{
    OperationExt, PATIENCE, ProcessServer, RedisOptions, RedisServer, blocking, free_port, pb,
};

const ADMIN: &str = "admin-secret-7f3a9c1e";
const OPERATOR: &str = "operator-secret-2b8d4e6f";
const MEMBER: &str = "member-secret-5c1a7b9d";
const VIEWER: &str = "viewer-secret-9e2f3a4b";
const WRONG: &str = "wrong-secret-0d6c8e2a";
const HS_SECRET: &str = "hs256-shared-secret-4a8c2e6f1b3d5a7c9e0f";

/// The kinds of caller the matrix tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    MemberIn,
    MemberOut,
    Viewer,
    NoToken,
    BadToken,
    Operator,
    Admin,
}

/// What an RPC needs, written here independently of the server's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Any role; a member only for its scope's resources.
    ReadScoped,
    /// Any role; not scoped (lists are filtered instead).
    Read,
    /// Member (in scope), operator, admin.
    Data,
    /// Operator, admin: no database for a member's scope.
    DataUnscoped,
    /// Admin only.
    Admin,
}

/// The answer auth should give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Through,
    Denied,
    Unauthenticated,
}

fn expected(who: Who, needs: Needs) -> Expect {
    use Expect::{Denied, Through, Unauthenticated};
    use Needs::{DataUnscoped, Read, ReadScoped};
    use Who::{BadToken, MemberIn, MemberOut, NoToken, Operator, Viewer};
    match (who, needs) {
        (NoToken | BadToken, _) => Unauthenticated,
        (Who::Admin, _) => Through,
        (_, Needs::Admin) => Denied,
        (Operator, _) => Through,
        (Viewer, Read | ReadScoped) => Through,
        (Viewer, _) => Denied,
        (MemberIn | MemberOut, DataUnscoped) => Denied,
        (MemberIn, _) | (MemberOut, Read) => Through,
        (MemberOut, _) => Denied,
    }
}

/// The RPCs in the order the matrix calls them (deletes last), with what they need.
const RPCS: &[(&str, &str, Needs)] = &[
    ("DatabaseService/CreateDatabase", "databases.create", Needs::Admin),
    ("DatabaseService/GetDatabase", "databases.get", Needs::ReadScoped),
    ("DatabaseService/ListDatabases", "databases.list", Needs::Read),
    ("DatabaseService/UpdateDatabase", "databases.update", Needs::Admin),
    ("DestinationService/CreateDestination", "destinations.create", Needs::Admin),
    ("DestinationService/GetDestination", "destinations.get", Needs::Read),
    ("DestinationService/ListDestinations", "destinations.list", Needs::Read),
    ("DestinationService/UpdateDestination", "destinations.update", Needs::Admin),
    ("BackupService/CreateBackup", "backups.create", Needs::Data),
    ("BackupService/GetBackup", "backups.get", Needs::ReadScoped),
    ("BackupService/ListBackups", "backups.list", Needs::Read),
    ("BackupService/UpdateBackup", "backups.update", Needs::Data),
    ("ExportService/ExportBackup", "backups.export", Needs::Data),
    ("ExportService/DownloadBackup", "backups.download", Needs::Data),
    ("ExportService/ExportDatabase", "databases.export", Needs::Data),
    ("ImportService/ImportDatabase", "databases.import", Needs::Data),
    ("ImportService/ImportBackup", "backups.import", Needs::DataUnscoped),
    ("OperationService/GetOperation", "operations.get", Needs::ReadScoped),
    ("OperationService/ListOperations", "operations.list", Needs::Read),
    ("OperationService/WaitOperation", "operations.wait", Needs::ReadScoped),
    ("OperationService/WatchOperation", "operations.watch", Needs::ReadScoped),
    ("OperationService/CancelOperation", "operations.cancel", Needs::Data),
    ("BackupService/RestoreBackup", "backups.restore", Needs::Data),
    ("BackupService/DeleteBackup", "backups.delete", Needs::Data),
    ("OperationService/DeleteOperation", "operations.delete", Needs::Data),
    ("DatabaseService/DeleteDatabase", "databases.delete", Needs::Admin),
    ("DestinationService/DeleteDestination", "destinations.delete", Needs::Admin),
];

/// The ids one caller's calls act on.
struct Target {
    database: String,
    backup: String,
    operation: String,
    destination: String,
}

const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

/// Calls `rpc` with a request aimed at `target`; only its status matters.
async fn call(clients: &AuthedClients, rpc: &str, target: &Target) -> Result<(), tonic::Status> {
    let operation = || target.operation.clone();
    match rpc {
        "DatabaseService/CreateDatabase" => {
            clients.databases().create_database(pb::CreateDatabaseRequest::default()).await.map(drop)
        }
        "DatabaseService/GetDatabase" => clients
            .databases()
            .get_database(pb::GetDatabaseRequest { id: target.database.clone() })
            .await
            .map(drop),
        "DatabaseService/ListDatabases" => {
            clients.databases().list_databases(pb::ListDatabasesRequest::default()).await.map(drop)
        }
        "DatabaseService/UpdateDatabase" => {
            clients.databases().update_database(pb::UpdateDatabaseRequest::default()).await.map(drop)
        }
        "DatabaseService/DeleteDatabase" => clients
            .databases()
            .delete_database(pb::DeleteDatabaseRequest { id: UNKNOWN.into() })
            .await
            .map(drop),
        "DestinationService/CreateDestination" => {
            clients.destinations().create_destination(pb::CreateDestinationRequest::default()).await.map(drop)
        }
        "DestinationService/GetDestination" => clients
            .destinations()
            .get_destination(pb::GetDestinationRequest { id: target.destination.clone() })
            .await
            .map(drop),
        "DestinationService/ListDestinations" => {
            clients.destinations().list_destinations(pb::ListDestinationsRequest::default()).await.map(drop)
        }
        "DestinationService/UpdateDestination" => {
            clients.destinations().update_destination(pb::UpdateDestinationRequest::default()).await.map(drop)
        }
        "DestinationService/DeleteDestination" => clients
            .destinations()
            .delete_destination(pb::DeleteDestinationRequest { id: UNKNOWN.into() })
            .await
            .map(drop),
        "BackupService/CreateBackup" => {
            clients.backups().create_backup(crate::support::backup_of(&target.database)).await.map(drop)
        }
        "BackupService/GetBackup" => {
            clients.backups().get_backup(pb::GetBackupRequest { id: target.backup.clone() }).await.map(drop)
        }
        "BackupService/ListBackups" => {
            clients.backups().list_backups(pb::ListBackupsRequest::default()).await.map(drop)
        }
        "BackupService/UpdateBackup" => {
            let backup = pb::Backup {
                id: target.backup.clone(),
                labels: [("checked".to_owned(), "yes".to_owned())].into(),
                ..Default::default()
            };
            let update_mask = Some(prost_types::FieldMask { paths: vec!["labels".into()] });
            clients
                .backups()
                .update_backup(pb::UpdateBackupRequest { backup: Some(backup), update_mask })
                .await
                .map(drop)
        }
        "BackupService/DeleteBackup" => clients
            .backups()
            .delete_backup(pb::DeleteBackupRequest { id: target.backup.clone(), ..Default::default() })
            .await
            .map(drop),
        "BackupService/RestoreBackup" => clients
            .backups()
            .restore_backup(pb::RestoreBackupRequest {
                backup_id: target.backup.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ExportService/ExportBackup" => clients
            .exports()
            .export_backup(pb::ExportBackupRequest { backup_id: target.backup.clone(), ..Default::default() })
            .await
            .map(drop),
        "ExportService/DownloadBackup" => clients
            .exports()
            .download_backup(pb::DownloadBackupRequest {
                backup_id: target.backup.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        // No location and no source: past the scope check, the request is invalid.
        "ExportService/ExportDatabase" => clients
            .exports()
            .export_database(pb::ExportDatabaseRequest {
                database_id: target.database.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ImportService/ImportDatabase" => clients
            .imports()
            .import_database(pb::ImportDatabaseRequest {
                database_id: target.database.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        "ImportService/ImportBackup" => {
            clients.imports().import_backup(pb::ImportBackupRequest::default()).await.map(drop)
        }
        "OperationService/GetOperation" => {
            clients.operations().get_operation(pb::GetOperationRequest { name: operation() }).await.map(drop)
        }
        "OperationService/ListOperations" => {
            clients.operations().list_operations(pb::ListOperationsRequest::default()).await.map(drop)
        }
        "OperationService/WaitOperation" => clients
            .operations()
            .wait_operation(pb::WaitOperationRequest {
                name: operation(),
                timeout: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
            })
            .await
            .map(drop),
        "OperationService/WatchOperation" => clients
            .operations()
            .watch_operation(pb::WatchOperationRequest { name: operation() })
            .await
            .map(drop),
        "OperationService/CancelOperation" => clients
            .operations()
            .cancel_operation(pb::CancelOperationRequest { name: operation() })
            .await
            .map(drop),
        "OperationService/DeleteOperation" => clients
            .operations()
            .delete_operation(pb::DeleteOperationRequest { name: operation() })
            .await
            .map(drop),
        other => panic!("the matrix has no call for {other}"),
    }
}

/// Writes the configuration file: four tokens (hashes only) and an HS256 JWT key.
fn write_config(dir: &Path) -> std::path::PathBuf {
    write_config_with(dir, "")
}

/// Like [`write_config`], with more `[auth]` settings.
fn write_config_with(dir: &Path, settings: &str) -> std::path::PathBuf {
    let secret_file = dir.join("jwt.secret");
    std::fs::write(&secret_file, HS_SECRET).unwrap();
    let text = [
        format!("[auth]\n{settings}"),
        token_entry("root", ADMIN, "admin", None),
        token_entry("ops", OPERATOR, "operator", None),
        token_entry("shop-team", MEMBER, "member", Some("{ databases = [\"inside\"] }")),
        token_entry("auditor", VIEWER, "viewer", None),
        format!(
            "[auth.jwt]\nalgorithm = \"HS256\"\nsecret_file = \"{}\"\naudience = \"cellar\"\n",
            secret_file.display()
        ),
    ]
    .concat();
    let file = dir.join("cellar.toml");
    std::fs::write(&file, text).unwrap();
    file
}

pub(super) async fn start(dir: &Path, config: &Path) -> ProcessServer {
    let data_dir = dir.join("data");
    ProcessServer::start_with(&data_dir, &["--config", config.to_str().unwrap()]).await
}

async fn wait_done(clients: &AuthedClients, name: &str) -> pb::Operation {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let request = pb::WaitOperationRequest {
            name: name.to_owned(),
            timeout: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
        };
        let operation =
            clients.operations().wait_operation(request).await.expect("WaitOperation").into_inner();
        if operation.done {
            return operation;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} not done in time");
    }
}

/// Registers a Redis as `name` and backs it up: the target of one kind of caller.
async fn target(admin: &AuthedClients, name: &str, redis: &RedisServer) -> Target {
    let request = pb::CreateDatabaseRequest {
        database: Some(crate::support::redis_database(name, &redis.uri())),
        request_id: String::new(),
    };
    let database = admin.databases().create_database(request).await.expect("CreateDatabase").into_inner();
    let created = admin
        .backups()
        .create_backup(crate::support::backup_of(&database.id))
        .await
        .expect("CreateBackup")
        .into_inner();
    let done = wait_done(admin, &created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("a backup").clone();
    let destinations = admin.destinations().list_destinations(pb::ListDestinationsRequest::default()).await;
    let destination = destinations.expect("ListDestinations").into_inner().destinations[0].id.clone();
    Target { database: database.id, backup: backup.id, operation: done.name, destination }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_against_every_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let server = start(dir.path(), &config).await;
    let (inside_redis, outside_redis) = blocking(|| {
        let inside = RedisServer::start(RedisOptions::diskless());
        inside.call(&["SET", "k", "inside"]);
        let outside = RedisServer::start(RedisOptions::diskless());
        outside.call(&["SET", "k", "outside"]);
        (inside, outside)
    });
    let admin = AuthedClients::connect(server.addr, Some(ADMIN)).await;
    let inside = target(&admin, "inside", &inside_redis).await;
    let outside = target(&admin, "outside", &outside_redis).await;

    // A member's lists show its scope only; an operator's show everything.
    let member = AuthedClients::connect(server.addr, Some(MEMBER)).await;
    let listed =
        member.databases().list_databases(pb::ListDatabasesRequest::default()).await.unwrap().into_inner();
    assert_eq!(
        listed.databases.iter().map(|database| database.name.as_str()).collect::<Vec<_>>(),
        ["inside"]
    );
    let backups =
        member.backups().list_backups(pb::ListBackupsRequest::default()).await.unwrap().into_inner();
    assert_eq!(
        backups.backups.iter().map(|backup| backup.id.as_str()).collect::<Vec<_>>(),
        [inside.backup.as_str()]
    );
    let operations =
        member.operations().list_operations(pb::ListOperationsRequest::default()).await.unwrap().into_inner();
    assert!(
        operations.operations.iter().all(|operation| operation.name != outside.operation),
        "{operations:?}"
    );
    assert!(
        operations.operations.iter().any(|operation| operation.name == inside.operation),
        "{operations:?}"
    );
    let operator = AuthedClients::connect(server.addr, Some(OPERATOR)).await;
    let all =
        operator.databases().list_databases(pb::ListDatabasesRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.databases.len(), 2);

    let mut failures = Vec::new();
    let mut checked = 0;
    for who in
        [Who::MemberIn, Who::MemberOut, Who::Viewer, Who::NoToken, Who::BadToken, Who::Operator, Who::Admin]
    {
        let token = match who {
            Who::MemberIn | Who::MemberOut => Some(MEMBER),
            Who::Viewer => Some(VIEWER),
            Who::NoToken => None,
            Who::BadToken => Some(WRONG),
            Who::Operator => Some(OPERATOR),
            Who::Admin => Some(ADMIN),
        };
        let clients = AuthedClients::connect(server.addr, token).await;
        let target = if who == Who::MemberOut { &outside } else { &inside };
        for (rpc, permission, needs) in RPCS {
            let status = call(&clients, rpc, target).await.err();
            let code = status.as_ref().map_or(Code::Ok, tonic::Status::code);
            let ok = match expected(who, *needs) {
                Expect::Through => !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                Expect::Denied => {
                    code == Code::PermissionDenied
                        && status.as_ref().is_some_and(|s| s.message().contains(permission))
                }
                Expect::Unauthenticated => code == Code::Unauthenticated,
            };
            checked += 1;
            if !ok {
                failures.push(format!("{who:?} {rpc}: expected {:?}, got {status:?}", expected(who, *needs)));
            }
        }
    }
    assert_eq!(checked, 7 * RPCS.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every RPC of the proto is in the matrix.
    let served: Vec<_> =
        cellar::grpc::auth::METHODS.iter().map(|(path, _)| path.trim_start_matches("/cellar.v1.")).collect();
    let mut tried: Vec<_> = RPCS.iter().map(|(rpc, _, _)| *rpc).collect();
    tried.sort_unstable();
    let mut served_sorted = served.clone();
    served_sorted.sort_unstable();
    assert_eq!(tried, served_sorted);

    // The audit log names callers by id, never by token.
    let logs = server.logs();
    assert!(logs.contains("cellar::audit"), "no audit lines:\n{logs}");
    assert!(logs.contains("caller=\"token:shop-team\"") || logs.contains("caller=token:shop-team"), "{logs}");
    assert!(
        logs.contains("permission=\"backups.delete\"") || logs.contains("permission=backups.delete"),
        "{logs}"
    );
    assert_no_secret(&logs, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_links_can_require_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), "download_requires_token = true\n");
    let server = start(dir.path(), &config).await;
    let (inside_redis, outside_redis) = blocking(|| {
        (RedisServer::start(RedisOptions::diskless()), RedisServer::start(RedisOptions::diskless()))
    });
    let admin = AuthedClients::connect(server.addr, Some(ADMIN)).await;
    let inside = target(&admin, "inside", &inside_redis).await;
    let outside = target(&admin, "outside", &outside_redis).await;
    let link = |backup: String| {
        let admin = admin.clone();
        async move {
            let request = pb::ExportBackupRequest { backup_id: backup, ..Default::default() };
            admin.exports().export_backup(request).await.expect("ExportBackup").into_inner().download_url
        }
    };
    let (inside_url, outside_url) = (link(inside.backup).await, link(outside.backup).await);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let status = |url: String, token: Option<&'static str>| {
        let request = client.get(url);
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.expect("a download answer").status().as_u16() }
    };
    assert_eq!(status(inside_url.clone(), None).await, 401);
    assert_eq!(status(inside_url.clone(), Some(WRONG)).await, 401);
    assert_eq!(status(inside_url.clone(), Some(VIEWER)).await, 403);
    assert_eq!(status(inside_url.clone(), Some(MEMBER)).await, 200);
    assert_eq!(status(outside_url.clone(), Some(MEMBER)).await, 403);
    assert_eq!(status(outside_url.clone(), Some(OPERATOR)).await, 200);
    let logs = server.logs();
    assert!(logs.contains("backups.download"), "the downloads are audited:\n{logs}");
    let link_token = |url: &str| url.rsplit('/').next().unwrap().to_owned();
    assert_no_secret(&logs, &[&link_token(&inside_url), &link_token(&outside_url)]);
}

/// A JWT with `claims` signed by `key`.
fn jwt(algorithm: jsonwebtoken::Algorithm, key: &EncodingKey, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).expect("sign a JWT")
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The claims of a token valid now for `role`, changed by `edit`.
fn claims(role: &str, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut claims = serde_json::json!({ "sub": "alice", "aud": "cellar", "exp": now() + 600, "nbf": now() - 10, "role": role });
    edit(&mut claims);
    claims
}

/// Checks a server's answers to JWTs signed by `key`; returns the tokens used.
pub(super) async fn check_jwts(
    server: &ProcessServer,
    algorithm: jsonwebtoken::Algorithm,
    key: &EncodingKey,
) -> Vec<String> {
    let list = |token: String| async move {
        let clients = AuthedClients::connect(server.addr, Some(&token)).await;
        let listed = clients.databases().list_databases(pb::ListDatabasesRequest::default()).await;
        listed.map(drop).map_err(|status| (status.code(), status.message().to_owned()))
    };
    let valid = jwt(algorithm, key, claims("viewer", |_| {}));
    assert_eq!(list(valid.clone()).await, Ok(()), "a valid {algorithm:?} token");
    let viewer = AuthedClients::connect(server.addr, Some(&valid)).await;
    let denied = viewer.backups().create_backup(crate::support::backup_of(UNKNOWN)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("backups.create"), "{denied:?}");

    let expired = jwt(algorithm, key, claims("admin", |claims| claims["exp"] = (now() - 3600).into()));
    let early = jwt(algorithm, key, claims("admin", |claims| claims["nbf"] = (now() + 3600).into()));
    let elsewhere = jwt(algorithm, key, claims("admin", |claims| claims["aud"] = "another-service".into()));
    let no_role = jwt(algorithm, key, claims("root", |_| {}));
    // A tampered token: the payload says admin, the signature is the viewer's.
    let admin = jwt(algorithm, key, claims("admin", |_| {}));
    let (admin_head, _) = admin.rsplit_once('.').unwrap();
    let (_, viewer_signature) = valid.rsplit_once('.').unwrap();
    let tampered = format!("{admin_head}.{viewer_signature}");
    let mut flipped = valid.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for (token, reason) in [
        (&expired, "expired"),
        (&early, "not valid yet"),
        (&elsewhere, "wrong audience"),
        (&no_role, "'role' claim"),
        (&tampered, "bad signature"),
        (&flipped, "not valid"),
    ] {
        let (code, message) = list(token.clone()).await.unwrap_err();
        assert_eq!(code, Code::Unauthenticated, "{reason}: {message}");
        assert!(message.contains(reason), "{reason}: {message}");
    }
    vec![valid, expired, early, elsewhere, no_role, tampered, flipped, admin]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_jwts_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let server = start(dir.path(), &config).await;
    let key = EncodingKey::from_secret(HS_SECRET.as_bytes());
    let tokens = check_jwts(&server, jsonwebtoken::Algorithm::HS256, &key).await;
    // A token signed with another secret.
    let forged = jwt(
        jsonwebtoken::Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-of-32-bytes-at-least!"),
        claims("admin", |_| {}),
    );
    let clients = AuthedClients::connect(server.addr, Some(&forged)).await;
    let status = clients.databases().list_databases(pb::ListDatabasesRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.push(&forged);
    assert_no_secret(&server.logs(), &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_jwts_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo of an Ed25519 key: a fixed prefix, then the 32 bytes.
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let key_file = dir.path().join("jwt.pub");
    std::fs::write(&key_file, pem).unwrap();
    let config = dir.path().join("cellar.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.jwt]\nalgorithm = \"EdDSA\"\nkey_file = \"{}\"\naudience = \"cellar\"\nissuer = \"https://id.example.com\"\n",
            key_file.display()
        ),
    )
    .unwrap();
    let server = start(dir.path(), &config).await;
    let key = EncodingKey::from_ed_der(pkcs8.as_ref());
    let with_issuer = |claims: &mut serde_json::Value| claims["iss"] = "https://id.example.com".into();
    let valid = jwt(jsonwebtoken::Algorithm::EdDSA, &key, claims("operator", with_issuer));
    let clients = AuthedClients::connect(server.addr, Some(&valid)).await;
    clients
        .databases()
        .list_databases(pb::ListDatabasesRequest::default())
        .await
        .expect("a valid EdDSA token");
    let foreign = jwt(
        jsonwebtoken::Algorithm::EdDSA,
        &key,
        claims("operator", |claims| claims["iss"] = "https://evil.example.com".into()),
    );
    let clients = AuthedClients::connect(server.addr, Some(&foreign)).await;
    let status = clients.databases().list_databases(pb::ListDatabasesRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("wrong issuer"), "{status:?}");
    // An HS256 token is refused by a server that takes EdDSA only.
    let hs = jwt(
        jsonwebtoken::Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        claims("admin", with_issuer),
    );
    let clients = AuthedClients::connect(server.addr, Some(&hs)).await;
    let status = clients.databases().list_databases(pb::ListDatabasesRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_no_secret(&server.logs(), &[&valid, &foreign, &hs]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let metrics = format!("127.0.0.1:{}", blocking(free_port));
    let data_dir = dir.path().join("data");
    let server = ProcessServer::start_with(
        &data_dir,
        &["--config", config.to_str().unwrap(), "--metrics-listen", &metrics],
    )
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{metrics}/metrics");
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = client.get(&url).bearer_auth(WRONG).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let viewer = client.get(&url).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(viewer.status(), 200);
    assert!(viewer.text().await.unwrap().contains("cellar_"), "the metrics text");

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .expect("health answers without a token");
    assert_eq!(health.into_inner().status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    assert_no_secret(&server.logs(), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_must_listen_on_loopback_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("CELLAR_LISTEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address") && stderr.contains("hash-token"), "{stderr}");

    let server = ProcessServer::start(&dir.path().join("data")).await;
    assert!(server.logs().contains("authentication off"), "{}", server.logs());

    let mut hashing = std::process::Command::new(env!("CARGO_BIN_EXE_cellar"))
        .arg("hash-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut hashing.stdin.take().unwrap(), ADMIN.as_bytes()).unwrap();
    let hashed = hashing.wait_with_output().unwrap();
    assert!(hashed.status.success());
    assert_eq!(String::from_utf8_lossy(&hashed.stdout).trim(), cellar::auth::hash_token(ADMIN));
}

/// Fails if `logs` hold any test secret: the configured tokens, the wrong one, the JWT
/// secret, or one of `more`.
pub(super) fn assert_no_secret(logs: &str, more: &[&str]) {
    assert!(!logs.is_empty(), "no logs were captured");
    for secret in [ADMIN, OPERATOR, MEMBER, VIEWER, WRONG, HS_SECRET].iter().chain(more) {
        crate::support::logs::remember_secret(secret);
        assert!(!logs.contains(secret), "a test secret is in the logs");
        // A JWT's signature alone is enough to replay it.
        if let Some((_, signature)) = secret.rsplit_once('.') {
            assert!(!logs.contains(signature), "a JWT signature is in the logs");
        }
    }
}
