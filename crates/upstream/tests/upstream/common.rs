use axum::body::Body;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use gomod::ModulePath;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use upstream::{Config, Upstream};

/// A fake proxy on 127.0.0.1 that answers every path with what `respond`
/// builds, counting requests and remembering their paths.
pub struct Fake {
    pub base: String,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    pub async fn start(respond: impl Fn() -> Response + Clone + Send + Sync + 'static) -> Fake {
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (h, p) = (hits.clone(), paths.clone());
        let router = Router::new().fallback(move |uri: Uri| {
            let respond = respond.clone();
            h.fetch_add(1, Ordering::SeqCst);
            p.lock().unwrap().push(uri.path().to_string());
            async move { respond() }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Fake { base, hits, paths }
    }

    /// Answers every path with `status` and `body`.
    pub async fn answering(status: u16, body: &'static str) -> Fake {
        Fake::start(move || reply(status, body)).await
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

pub fn reply(status: u16, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.into())
        .unwrap()
}

/// An address that accepts connections and never answers.
pub async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    base
}

/// An address where nothing listens: connections are refused.
pub async fn refusing_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    base
}

pub fn config(proxies: &str) -> Config {
    Config {
        proxies: proxies.to_string(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

pub fn upstream(proxies: &str) -> Upstream {
    Upstream::new(config(proxies)).unwrap()
}

pub fn module(path: &str) -> ModulePath {
    ModulePath::new(path).unwrap()
}
