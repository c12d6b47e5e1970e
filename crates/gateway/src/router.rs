use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::{self, header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures::future::{ready, Either, Ready};
use tower::Service;

use crate::primary::Incoming;
use crate::proxy::{self, FromMemory};
use crate::zerocopy::ZeroCopy;
use crate::{page, status, AppState};

/// The gateway's routes. Module paths contain `/` and end at `@v` or
/// `@latest`, which axum patterns cannot express, so every GOPROXY request
/// goes through one fallback handler that lets `gomod` parse the path.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page::page))
        .route("/healthz", get(status::healthz))
        .route("/serving", get(status::serving))
        .route("/readyz", get(status::readyz))
        .route("/metrics", get(status::metrics))
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/blobs/{sha256}", get(status::blob))
        .fallback(proxy::handle)
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

/// The gateway as a service: a GET whose answer is kept in memory
/// ([`proxy::from_memory`]) is answered here, in the call itself, and
/// everything else goes to the [`router`]. On a warm mirror most requests
/// are such hits, and the router's per-request machinery (matching, the
/// middleware, extractors, boxed futures) cost as much as the answer.
/// Kept answers exist only for valid GOPROXY paths, so this needs no route
/// table of its own; it counts what it answers as the router would.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<AppState>,
    router: Router,
    zero_copy: bool,
}

impl Gateway {
    pub fn new(state: Arc<AppState>) -> Self {
        Gateway { router: router(state.clone()), state, zero_copy: false }
    }

    /// For connections that write through [`crate::zerocopy::ZeroCopyTcp`]:
    /// large zips are then sent with sendfile.
    pub fn with_zero_copy(self) -> Self {
        Gateway { router: self.router.layer(Extension(ZeroCopy)), zero_copy: true, ..self }
    }

    fn answer_from_memory<B>(&self, req: &http::Request<B>) -> Option<Response> {
        let incoming = Incoming {
            path: req.uri().path(),
            headers: req.headers(),
            zero_copy: self.zero_copy && req.version() <= http::Version::HTTP_11,
        };
        let FromMemory::Answered(kind, mut resp) = proxy::from_memory(&self.state, &incoming)? else {
            return None;
        };
        // What the router adds to a response that lacks it.
        let len = resp.body().size_hint().exact();
        if let Some(len) = len.filter(|_| !resp.headers().contains_key(header::CONTENT_LENGTH)) {
            resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        self.state.metrics.answered_from_memory(kind, resp.status().as_u16(), len.unwrap_or(0));
        Some(resp)
    }
}

impl<B> Service<http::Request<B>> for Gateway
where
    Router: Service<http::Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, <Router as Service<http::Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<http::Request<B>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.method() == Method::GET {
            if let Some(resp) = self.answer_from_memory(&req) {
                return Either::Left(ready(Ok(resp)));
            }
        }
        Either::Right(self.router.call(req))
    }
}

async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let is_head = req.method() == axum::http::Method::HEAD;
    let resp = next.run(req).await;
    state.metrics.request(route, resp.status().as_u16());
    if !is_head && resp.status().is_success() && matches!(route, "list" | "latest" | "info" | "mod" | "zip") {
        // Content-Length is set further out (by the router) when the
        // handler left it to the body's size.
        let header = resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        state.metrics.bytes_served.inc_by(header.or(resp.body().size_hint().exact()).unwrap_or(0));
    }
    resp
}

fn route_label(path: &str) -> &'static str {
    match path {
        p if p.starts_with("/sumdb/") => "sumdb",
        "/healthz" => "healthz",
        "/serving" => "serving",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/api/v1/status" => "status",
        p if p.starts_with("/api/v1/blobs/") => "blob",
        "/" => "landing",
        p if p.ends_with("/@v/list") => "list",
        p if p.ends_with("/@latest") => "latest",
        p if p.ends_with(".info") => "info",
        p if p.ends_with(".mod") => "mod",
        p if p.ends_with(".zip") => "zip",
        _ => "other",
    }
}
