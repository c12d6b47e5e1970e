//! `HEAD`: what this node holds, answered from its own catalog. A `HEAD`
//! never fetches from upstream, is never redirected or relayed to the
//! primary, and sends no body (only the headers a `GET` would).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use gomod::{Request, VersionRef};

use crate::proxy::{IMMUTABLE, JSON, TEXT};
use crate::{ApiError, AppState};

pub async fn answer(state: &Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let catalog = &state.store.catalog;
    let found = match &request {
        Request::Info { module, version: VersionRef::Canonical(version) } => {
            catalog.info(module, version)?.map(|b| head(JSON, IMMUTABLE, b.len() as u64, None))
        }
        Request::Mod { module, version } => catalog.go_mod(module, version)?.map(|b| head(TEXT, IMMUTABLE, b.len() as u64, None)),
        Request::Zip { module, version } => {
            catalog.zip(module, version)?.map(|zip| head("application/zip", IMMUTABLE, zip.size, Some(format!("\"{}\"", zip.sha256))))
        }
        Request::List { module } => catalog.list(module)?.map(|_| head(TEXT, "no-cache", 0, None)),
        Request::Latest { module } => catalog.latest(module)?.map(|_| head(JSON, "no-cache", 0, None)),
        Request::Info { version: VersionRef::Query(_), .. } => None,
    };
    found.ok_or_else(|| ApiError::not_found("not cached on this mirror node (HEAD only looks; a GET fetches it)"))
}

/// Headers only. Lists are merged with the catalog when served, so their
/// length is left out rather than guessed.
fn head(content_type: &'static str, cache_control: &'static str, len: u64, etag: Option<String>) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if len > 0 {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert(header::ETAG, tag);
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    resp
}
