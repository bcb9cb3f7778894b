//! The Prometheus endpoint, scraped over HTTP: its text parsed, the freshness gauges of a
//! database with a real backup correct, operations counted by kind and outcome.

use std::collections::HashMap;

use crate::support::{
    OperationExt, PATIENCE, RedisOptions, RedisServer, ServerOptions, TestServer, backup_of, blocking,
    free_port, pb, poll,
};

/// `GET path` on `address`: the status line and the body.
async fn get(address: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect to the metrics listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// The samples of a Prometheus text: `name{labels}` → value.
fn parse_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(series, _)| {
            series.starts_with(&format!("{name}{{"))
                && labels.iter().all(|(key, value)| series.contains(&format!("{key}=\"{value}\"")))
        })
        .map(|(_, value)| *value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_shows_backup_freshness_and_operations() {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], blocking(free_port)));
    let server =
        TestServer::start_with(ServerOptions { metrics_listen: Some(address), ..ServerOptions::default() })
            .await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.call(&["SET", "greeting", "hello"]);
        source
    });
    let database = server.register_redis("measured", &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = server.backup(&done.response_backup().expect("the backup").id).await;

    let (status, body) = get(address, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let samples = parse_samples(&body);
    let by_database = [("database_id", database.id.as_str()), ("database", "measured")];
    let finished = backup.update_time.expect("an update time");
    let finished = finished.seconds as f64 + f64::from(finished.nanos) / 1e9;
    let last = sample(&samples, "cellar_last_backup_success_timestamp_seconds", &by_database)
        .unwrap_or_else(|| panic!("no freshness gauge in:\n{body}"));
    assert!((last - finished).abs() < 1.0, "last success {last}, the backup finished at {finished}");
    let age = sample(&samples, "cellar_last_backup_age_seconds", &by_database).expect("an age gauge");
    assert!((0.0..60.0).contains(&age), "age {age}");
    let size = sample(&samples, "cellar_last_backup_size_bytes", &by_database).expect("a size gauge");
    assert_eq!(size as i64, backup.size_bytes);
    let succeeded = [("kind", "backup"), ("outcome", "succeeded")];
    assert_eq!(sample(&samples, "cellar_operations_total", &succeeded), Some(1.0));
    assert!(sample(&samples, "cellar_bytes_moved_total", &[("kind", "backup")]).unwrap_or(0.0) > 0.0);
    assert!(body.contains("cellar_operation_duration_seconds_bucket"), "a duration histogram:\n{body}");
    assert_eq!(samples.get("cellar_operations_running"), Some(&0.0));
    assert_eq!(samples.get("cellar_operations_queued"), Some(&0.0));

    // The age grows with time; other paths are not there.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = parse_samples(&get(address, "/metrics").await.1);
    assert!(sample(&later, "cellar_last_backup_age_seconds", &by_database).unwrap() >= age + 1.0);
    assert!(get(address, "/").await.0.contains("404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_is_known_after_a_restart() {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], blocking(free_port)));
    let mut server =
        TestServer::start_with(ServerOptions { metrics_listen: Some(address), ..ServerOptions::default() })
            .await;
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let database = server.register_redis("restarted", &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    assert_eq!(server.wait_done(&created.name).await.state(), pb::OperationState::Succeeded);

    server.restart().await;
    // The endpoint comes up as the server starts: poll it.
    let by_database = [("database_id", database.id.as_str())];
    poll("the restarted server's freshness gauge", PATIENCE, || async {
        let stream = tokio::net::TcpStream::connect(address).await.ok()?;
        drop(stream);
        let samples = parse_samples(&get(address, "/metrics").await.1);
        sample(&samples, "cellar_last_backup_success_timestamp_seconds", &by_database)
    })
    .await;
}
