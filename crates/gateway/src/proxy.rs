//! GOPROXY request handling: parse, answer from the store, fill misses.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gomod::{ModulePath, Request, Version, VersionRef};

use crate::{fill, lists, zipserve, ApiError, AppState};

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const JSON: &str = "application/json; charset=utf-8";
pub const TEXT: &str = "text/plain; charset=utf-8";

pub async fn handle(State(state): State<Arc<AppState>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("method {method} not allowed: a Go module proxy answers GET and HEAD"))
            .into_response();
    }
    let path = uri.path();
    if path.starts_with("/sumdb/") {
        return ApiError::not_found("not found: this mirror does not proxy checksum databases; the go command will contact the database directly").into_response();
    }
    let request = match gomod::parse_request(path) {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match answer(&state, request, &headers).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn answer(state: &Arc<AppState>, request: Request, headers: &HeaderMap) -> Result<Response, ApiError> {
    match request {
        Request::List { module } => lists::list(state, &module).await,
        Request::Latest { module } => lists::latest(state, &module).await,
        Request::Info { module, version: VersionRef::Canonical(version) } => {
            let body = info(state, &module, &version).await?;
            Ok(immutable(JSON, body))
        }
        Request::Info { module, version: VersionRef::Query(query) } => lists::query(state, &module, &query).await,
        Request::Mod { module, version } => {
            let body = go_mod(state, &module, &version).await?;
            Ok(immutable(TEXT, body))
        }
        Request::Zip { module, version } => zip(state, &module, &version, headers).await,
    }
}

async fn info(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Result<Vec<u8>, ApiError> {
    if let Some(body) = state.store.catalog.info(module, version)? {
        state.metrics.hit("info");
        return Ok(body);
    }
    state.metrics.miss("info");
    fill::info(state, module, version).await
}

async fn go_mod(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Result<Vec<u8>, ApiError> {
    if let Some(body) = state.store.catalog.go_mod(module, version)? {
        state.metrics.hit("mod");
        return Ok(body);
    }
    state.metrics.miss("mod");
    fill::go_mod(state, module, version).await
}

async fn zip(state: &Arc<AppState>, module: &ModulePath, version: &Version, headers: &HeaderMap) -> Result<Response, ApiError> {
    if let Some(zip) = state.store.catalog.zip(module, version)? {
        match zipserve::open(state, &zip).await {
            Ok(Some(blob)) => {
                state.metrics.hit("zip");
                return Ok(zipserve::respond(&zip, blob, headers));
            }
            Ok(None) => tracing::warn!(%module, %version, blob = %zip.sha256, "catalog names a blob this node does not have; fetching it again"),
            Err(e) => tracing::warn!(%module, %version, error = %e.message, "stored zip unusable; fetching it again"),
        }
    }
    state.metrics.miss("zip");
    let zip = fill::zip(state, module, version).await?;
    let blob = zipserve::open(state, &zip)
        .await?
        .ok_or_else(|| ApiError::internal(format!("zip for {module}@{version} vanished right after it was stored")))?;
    Ok(zipserve::respond(&zip, blob, headers))
}

pub fn immutable(content_type: &'static str, body: Vec<u8>) -> Response {
    respond(content_type, IMMUTABLE.to_string(), body)
}

pub fn respond(content_type: &'static str, cache_control: String, body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&cache_control) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}
