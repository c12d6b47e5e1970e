use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::{page, proxy, status, AppState};

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

async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let is_head = req.method() == axum::http::Method::HEAD;
    let resp = next.run(req).await;
    state.metrics.request(route, resp.status().as_u16());
    if !is_head && resp.status().is_success() && matches!(route, "list" | "latest" | "info" | "mod" | "zip") {
        let len = resp.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        state.metrics.bytes_served.inc_by(len.unwrap_or(0));
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
