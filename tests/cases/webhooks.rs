//! Completion webhooks against a real Redis and a local receiver: a backup's end
//! notified with a body and signature the receiver checks with the secret alone (an
//! HMAC computed here, not Cellar's code); a receiver failing with 500 gets the same
//! delivery again, signed with the rotated secret; a failed backup's error in the body;
//! URLs the policy refuses, at registration (PERMISSION_DENIED, URL_NOT_ALLOWED) and at
//! send time (a redirect to a metadata address is not followed); the secret never in a
//! response or a log; updates that set, keep, rotate and clear the webhook; a backup a
//! stop interrupts still notified; a delivery still retrying at a stop dropped, logged.

use std::time::Duration;

use prost::Message as _;
use ring::hmac;
use tonic::Code;

use crate::support::webhooks::{Received, WebhookReceiver};
use crate::support::{
    OperationExt, PATIENCE, RedisOptions, RedisServer, TestServer, assert_code, assert_invalid, backup_of,
    blocking, error_reason, logs, pb, poll, redis::free_port, redis_database,
};

const SECRET: &str = "whsec-4f1c2a9e-hunter2-webhook";
const ROTATED: &str = "whsec-rotated-7b3d-hunter3";

fn webhook(url: &str, secret: &str) -> Option<pb::Webhook> {
    Some(pb::Webhook { url: url.to_owned(), secret: secret.to_owned(), secret_set: false })
}

fn create(database: pb::Database) -> pb::CreateDatabaseRequest {
    pb::CreateDatabaseRequest { database: Some(database), request_id: String::new() }
}

fn update(database: pb::Database, paths: &[&str]) -> pb::UpdateDatabaseRequest {
    let paths = paths.iter().map(|path| path.to_string()).collect();
    pb::UpdateDatabaseRequest {
        database: Some(database),
        update_mask: Some(prost_types::FieldMask { paths }),
    }
}

/// Checks `Cellar-Signature` the way a receiver would: `t` within five minutes of now,
/// `v1` the hex HMAC-SHA256 of `<t>.<body>` keyed with the secret.
#[track_caller]
fn assert_signed(received: &Received, secret: &str) {
    let mut parts = received.signature.split(',');
    let timestamp = parts.next().and_then(|part| part.strip_prefix("t=")).expect("t= first");
    let given = parts.next().and_then(|part| part.strip_prefix("v1=")).expect("v1= second");
    let sent: i64 = timestamp.parse().expect("a unix time");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - sent).abs() < 300, "signed at {sent}, now {now}");
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&received.body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hex::decode(given).expect("hex");
    assert!(hmac::verify(&key, &signed, &tag).is_ok(), "the signature does not verify: {received:?}");
}

fn body_of(received: &Received) -> serde_json::Value {
    serde_json::from_slice(&received.body).expect("the body is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_real_redis_is_notified_with_a_valid_signature() {
    let receiver = WebhookReceiver::start(0).await;
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.call(&["SET", "greeting", "hello"]);
        source
    });
    let url = receiver.url("/hooks/cellar?team=db");
    let database = pb::Database { webhook: webhook(&url, SECRET), ..redis_database("hooked", &source.uri()) };
    let created = server.databases().create_database(create(database)).await.expect("CreateDatabase");
    let created = created.into_inner();
    let shown = created.webhook.clone().expect("the webhook is returned");
    assert_eq!((shown.url.as_str(), shown.secret.as_str(), shown.secret_set), (url.as_str(), "", true));

    // The secret is input only: not in GetDatabase's answer, not even in its bytes.
    let request = pb::GetDatabaseRequest { id: created.id.clone() };
    let got = server.databases().get_database(request).await.expect("GetDatabase").into_inner();
    assert_eq!(got.webhook, created.webhook);
    let encoded = got.encode_to_vec();
    assert!(!encoded.windows(SECRET.len()).any(|window| window == SECRET.as_bytes()));

    let started = server.start_backup(backup_of(&created.id)).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup");

    let received = receiver.wait_for(1, PATIENCE).await;
    let delivery = &received[0];
    assert_eq!((delivery.method.as_str(), delivery.path.as_str()), ("POST", "/hooks/cellar?team=db"));
    assert_eq!(delivery.content_type, "application/json");
    assert_eq!(delivery.event, "operation.completed");
    assert_signed(delivery, SECRET);
    let body = body_of(delivery);
    assert_eq!(body["type"], "operation.completed");
    assert_eq!(body["id"], delivery.delivery.as_str());
    assert!(uuid::Uuid::parse_str(&delivery.delivery).is_ok(), "{}", delivery.delivery);
    let operation = &body["operation"];
    assert_eq!(operation["name"], done.name.as_str());
    assert_eq!(operation["kind"], "OPERATION_KIND_BACKUP");
    assert_eq!(operation["state"], "OPERATION_STATE_SUCCEEDED");
    assert_eq!(operation["database_id"], created.id.as_str());
    assert_eq!(operation["database_name"], "hooked");
    assert_eq!(operation["backup_id"], backup.id.as_str());
    for time in ["create_time", "start_time", "end_time"] {
        let text = operation[time].as_str().unwrap_or_else(|| panic!("{time} in {body}"));
        assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{time}: {text}");
    }
    assert!(operation.get("error").is_none(), "{body}");
    let text = String::from_utf8_lossy(&delivery.body);
    assert!(!text.contains(SECRET) && !text.contains(&source.uri()), "{text}");

    // One delivery only, and the logs name the endpoint without its query or the secret.
    let logs = poll("the delivery's log line", PATIENCE, || async {
        let logs = logs::captured();
        logs.contains(&delivery.delivery).then_some(logs)
    })
    .await;
    assert_eq!(receiver.received().len(), 1);
    assert!(!logs.contains(SECRET), "the secret was logged");
    assert!(!logs.contains("team=db"), "the query was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_with_500_gets_the_same_delivery_again() {
    let receiver = WebhookReceiver::start(1).await;
    let server = TestServer::start().await;
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let database = server.register_redis("retried", &source).await;
    assert_eq!(database.webhook, None);

    // Set by an update, then the secret rotated alone: the URL stays.
    let set = pb::Database {
        id: database.id.clone(),
        webhook: webhook(&receiver.url("/in"), SECRET),
        ..Default::default()
    };
    server.databases().update_database(update(set, &["webhook"])).await.expect("UpdateDatabase");
    let rotate =
        pb::Database { id: database.id.clone(), webhook: webhook("", ROTATED), ..Default::default() };
    let rotated = server.databases().update_database(update(rotate, &["webhook.secret"])).await;
    let rotated = rotated.expect("UpdateDatabase").into_inner().webhook.expect("a webhook");
    assert_eq!((rotated.url, rotated.secret_set, rotated.secret), (receiver.url("/in"), true, String::new()));

    let started = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");

    let received = receiver.wait_for(2, PATIENCE).await;
    assert_eq!(received.iter().map(|request| request.answered).collect::<Vec<_>>(), [500, 204]);
    assert_eq!(received[0].delivery, received[1].delivery, "a retry keeps the delivery id");
    assert_eq!(received[0].body, received[1].body, "a retry sends the same body");
    for request in &received {
        assert_signed(request, ROTATED);
    }
    assert_eq!(body_of(&received[1])["operation"]["name"], done.name.as_str());
    poll("the delivery's log line", PATIENCE, || async {
        logs::captured()
            .lines()
            .any(|line| line.contains(&received[0].delivery) && line.contains("attempts=2"))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_is_notified_with_its_error() {
    let receiver = WebhookReceiver::start(0).await;
    let server = TestServer::start().await;
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let database =
        pb::Database { webhook: webhook(&receiver.url("/"), SECRET), ..redis_database("nobody", &closed) };
    let database = server.register(database).await;
    let started = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");

    let received = receiver.wait_for(1, PATIENCE).await;
    assert_signed(&received[0], SECRET);
    let operation = body_of(&received[0])["operation"].clone();
    assert_eq!(operation["state"], "OPERATION_STATE_FAILED");
    let error = done.error().expect("an error");
    assert_eq!(operation["error"]["code"], error.code);
    assert_eq!(operation["error"]["reason"], "SOURCE_UNREACHABLE");
    assert_eq!(operation["error"]["message"], error.message.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_the_url_policy_refuses_are_never_called() {
    let receiver = WebhookReceiver::start(0).await;
    let server = TestServer::start().await;
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));

    // At registration: a metadata address, and a loopback address not on the allow-list.
    for url in ["http://169.254.169.254/latest", "http://127.0.0.2:8080/hooks"] {
        let database =
            pb::Database { webhook: webhook(url, SECRET), ..redis_database("refused", &source.uri()) };
        let status =
            assert_code(server.databases().create_database(create(database)).await, Code::PermissionDenied);
        assert_eq!(error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{status:?}");
        assert!(!status.message().contains(SECRET), "{status:?}");
    }
    let registered = server.register_redis("redirected", &source).await;
    let to_metadata = pb::Database {
        id: registered.id.clone(),
        webhook: webhook("http://169.254.169.254/", SECRET),
        ..Default::default()
    };
    let status = assert_code(
        server.databases().update_database(update(to_metadata, &["webhook"])).await,
        Code::PermissionDenied,
    );
    assert_eq!(error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{status:?}");

    // At send time: an allowed endpoint that redirects to the metadata address is
    // called once, and the redirect is not followed.
    let url = receiver.url("/redirect?to=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data");
    let hooked =
        pb::Database { id: registered.id.clone(), webhook: webhook(&url, SECRET), ..Default::default() };
    server.databases().update_database(update(hooked, &["webhook"])).await.expect("UpdateDatabase");
    let started = server.start_backup(backup_of(&registered.id)).await;
    let done = server.wait_done(&started.name).await;
    let received = receiver.wait_for(1, PATIENCE).await;
    assert_eq!(received[0].answered, 307);
    poll("the refusal's log line", PATIENCE, || async {
        logs::captured()
            .lines()
            .any(|line| line.contains(&received[0].delivery) && line.contains("refused by the URL policy"))
            .then_some(())
    })
    .await;
    assert_eq!(receiver.received().len(), 1, "a refused redirect is not retried");
    assert_eq!(done.state(), pb::OperationState::Succeeded, "the operation is not affected: {done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_updates_set_keep_rotate_and_clear() {
    let receiver = WebhookReceiver::start(0).await;
    let server = TestServer::start().await;
    let uri = "redis://127.0.0.1:6399";
    let databases = || server.databases();

    // Invalid values name their field; a secret is required with a URL.
    let cases = [
        (webhook(&receiver.url("/"), ""), "database.webhook.secret"),
        (webhook(&receiver.url("/"), "short"), "database.webhook.secret"),
        (webhook("ftp://127.0.0.1/x", SECRET), "database.webhook.url"),
        (webhook("http://user:pw@127.0.0.1/x", SECRET), "database.webhook.url"),
        (webhook("", SECRET), "database.webhook.url"),
    ];
    for (hook, field) in cases {
        let database = pb::Database { webhook: hook, ..redis_database("invalid", uri) };
        let status = assert_invalid(databases().create_database(create(database)).await, field);
        assert!(!status.message().contains(SECRET), "{status:?}");
    }

    let plain = server.register(redis_database("plain", uri)).await;
    let id = plain.id.clone();
    // A secret alone, on a database without a webhook, has no URL to go with.
    let secret_only = pb::Database { id: id.clone(), webhook: webhook("", SECRET), ..Default::default() };
    assert_invalid(
        databases().update_database(update(secret_only, &["webhook.secret"])).await,
        "database.webhook.url",
    );
    // So has a URL alone.
    let url_only =
        pb::Database { id: id.clone(), webhook: webhook(&receiver.url("/a"), ""), ..Default::default() };
    assert_invalid(
        databases().update_database(update(url_only.clone(), &["webhook.url"])).await,
        "database.webhook.secret",
    );

    // With no mask, a full webhook is set; then a new URL alone keeps the secret.
    let full =
        pb::Database { id: id.clone(), webhook: webhook(&receiver.url("/a"), SECRET), ..Default::default() };
    let set = databases()
        .update_database(pb::UpdateDatabaseRequest { database: Some(full), update_mask: None })
        .await;
    let set = set.expect("UpdateDatabase").into_inner();
    assert_eq!(
        set.webhook.as_ref().map(|hook| (hook.url.as_str(), hook.secret_set)),
        Some((receiver.url("/a").as_str(), true))
    );
    let moved =
        pb::Database { id: id.clone(), webhook: webhook(&receiver.url("/b"), ""), ..Default::default() };
    let moved = databases()
        .update_database(pb::UpdateDatabaseRequest { database: Some(moved), update_mask: None })
        .await;
    let moved = moved.expect("UpdateDatabase").into_inner().webhook.expect("kept");
    assert_eq!((moved.url, moved.secret_set), (receiver.url("/b"), true));
    // Other updates leave it alone.
    let renamed = pb::Database { id: id.clone(), name: "renamed".into(), ..Default::default() };
    let renamed =
        databases().update_database(update(renamed, &["name"])).await.expect("UpdateDatabase").into_inner();
    assert_eq!(renamed.webhook.map(|hook| hook.url), Some(receiver.url("/b")));

    // An empty URL under `webhook` removes it.
    let cleared =
        pb::Database { id: id.clone(), webhook: Some(pb::Webhook::default()), ..Default::default() };
    let cleared = databases().update_database(update(cleared, &["webhook"])).await.expect("UpdateDatabase");
    assert_eq!(cleared.into_inner().webhook, None);
    let got =
        databases().get_database(pb::GetDatabaseRequest { id }).await.expect("GetDatabase").into_inner();
    assert_eq!(got.webhook, None);
}

/// Deliveries do not hold up a server's stop: a receiver that keeps failing leaves a
/// delivery waiting for its retry, which the stop drops with a log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_drops_pending_deliveries_and_says_so() {
    let receiver = WebhookReceiver::start(usize::MAX).await;
    let mut server = TestServer::start().await;
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let database = pb::Database {
        webhook: webhook(&receiver.url("/down"), SECRET),
        ..redis_database("stopping", &source.uri())
    };
    let database = server.register(database).await;
    let started = server.start_backup(backup_of(&database.id)).await;
    server.wait_done(&started.name).await;
    receiver.wait_for(1, PATIENCE).await;

    let stopping = std::time::Instant::now();
    server.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(20), "the stop took {:?}", stopping.elapsed());
    assert!(logs::captured().contains("dropping webhook deliveries still pending at shutdown"));
}

/// An operation a graceful stop interrupts is notified before the server exits, when
/// the receiver answers within the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_interrupted_by_a_stop_is_notified() {
    let receiver = WebhookReceiver::start(0).await;
    let mut server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        // About 4 s of snapshot: the stop lands while it runs.
        source.load_slow_dataset(4000, 4096, 1000);
        source
    });
    let database = pb::Database {
        webhook: webhook(&receiver.url("/in"), SECRET),
        ..redis_database("interrupted", &source.uri())
    };
    let database = server.register(database).await;
    let started = server.start_backup(backup_of(&database.id)).await;
    server.wait_for_bytes(&started.name).await;
    server.stop().await;

    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_signed(&received[0], SECRET);
    let operation = body_of(&received[0])["operation"].clone();
    assert_eq!(operation["name"], started.name.as_str());
    assert_eq!(operation["state"], "OPERATION_STATE_FAILED");
    assert_eq!(operation["error"]["reason"], "INTERRUPTED");
}
