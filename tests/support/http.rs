//! `HttpServer`: a small file server (hyper 1) on a free loopback port, serving the files
//! of a temporary directory, for http(s) import tests. Routes:
//!
//! - `GET|HEAD /files/<name>`: the file, honouring `Range: bytes=N-`; Basic auth when
//!   the server was started with credentials; 404 for a missing file.
//! - `GET /redirect?to=<url>`: 302 to `<url>`.
//! - `GET /flaky/<name>`: 500 on the first request for `<name>`, then the file.
//!
//! It stops when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, LOCATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::task::JoinSet;

/// A running file server.
pub(crate) struct HttpServer {
    addr: SocketAddr,
    dir: TempDir,
    shared: Arc<Shared>,
    accepting: tokio::task::JoinHandle<()>,
}

struct Shared {
    root: PathBuf,
    /// `Basic <base64>` expected in `Authorization`, when auth is on.
    authorization: Option<String>,
    /// Requests seen per flaky file.
    flaky_hits: Mutex<HashMap<String, u32>>,
}

impl HttpServer {
    /// A server without authentication.
    pub(crate) async fn start() -> HttpServer {
        HttpServer::launch(None).await
    }

    /// A server that answers 401 unless given these Basic credentials.
    pub(crate) async fn with_basic_auth(user: &str, password: &str) -> HttpServer {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HttpServer::launch(Some(format!("Basic {encoded}"))).await
    }

    async fn launch(authorization: Option<String>) -> HttpServer {
        let dir = tempfile::Builder::new().prefix("cellar-http-").tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            root: dir.path().to_owned(),
            authorization,
            flaky_hits: Mutex::new(HashMap::new()),
        });
        let served = shared.clone();
        let accepting = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) ends every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = served.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        HttpServer { addr, dir, shared, accepting }
    }

    /// The directory served under `/files/` and `/flaky/`.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Copies `path` into the served directory as `name`.
    pub(crate) fn put(&self, name: &str, path: &Path) {
        std::fs::copy(path, self.dir.path().join(name)).expect("copy a file to serve");
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of a served file.
    pub(crate) fn file_url(&self, name: &str) -> String {
        self.url(&format!("/files/{name}"))
    }

    /// How many requests `/flaky/<name>` has had.
    pub(crate) fn flaky_hits(&self, name: &str) -> u32 {
        self.shared.flaky_hits.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(expected) = &shared.authorization {
        let given = request.headers().get(AUTHORIZATION).and_then(|value| value.to_str().ok());
        if given != Some(expected.as_str()) {
            let mut response = status(StatusCode::UNAUTHORIZED);
            response.headers_mut().insert(WWW_AUTHENTICATE, "Basic realm=\"cellar-test\"".parse().unwrap());
            return response;
        }
    }
    let path = request.uri().path().to_owned();
    if path == "/redirect" {
        let query = request.uri().query().unwrap_or_default();
        let target = url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "to")
            .map(|(_, value)| value.into_owned());
        let Some(target) = target else { return status(StatusCode::BAD_REQUEST) };
        let mut response = status(StatusCode::FOUND);
        response.headers_mut().insert(LOCATION, target.parse().unwrap());
        return response;
    }
    if let Some(name) = path.strip_prefix("/flaky/") {
        let first = {
            let mut hits = shared.flaky_hits.lock().unwrap();
            let count = hits.entry(name.to_owned()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            return status(StatusCode::INTERNAL_SERVER_ERROR);
        }
        return serve_file(shared, name, &request);
    }
    match path.strip_prefix("/files/") {
        Some(name) => serve_file(shared, name, &request),
        None => status(StatusCode::NOT_FOUND),
    }
}

fn serve_file(shared: &Shared, name: &str, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if name.contains('/') || name.starts_with('.') {
        return status(StatusCode::NOT_FOUND);
    }
    let Ok(content) = std::fs::read(shared.root.join(name)) else { return status(StatusCode::NOT_FOUND) };
    let total = content.len();
    let start = request
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes="))
        .and_then(|value| value.strip_suffix('-'))
        .and_then(|value| value.parse::<usize>().ok());
    let (code, body) = match start {
        None => (StatusCode::OK, content),
        Some(start) if start < total => (StatusCode::PARTIAL_CONTENT, content[start..].to_vec()),
        Some(_) => {
            let mut response = status(StatusCode::RANGE_NOT_SATISFIABLE);
            response.headers_mut().insert(CONTENT_RANGE, format!("bytes */{total}").parse().unwrap());
            return response;
        }
    };
    let length = body.len();
    let body = if request.method() == Method::HEAD { Vec::new() } else { body };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_LENGTH, length.into());
    if let Some(start) = start {
        let range = format!("bytes {start}-{}/{total}", total - 1);
        response.headers_mut().insert(CONTENT_RANGE, range.parse().unwrap());
    }
    response
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(code.to_string())));
    *response.status_mut() = code;
    response
}
