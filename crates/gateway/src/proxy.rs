//! GOPROXY request handling: parse, answer from the store, fill misses.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use gomod::{ModulePath, Request, Version, VersionRef};

use crate::kept::Answer;
use crate::primary::{self, Incoming};
use crate::zerocopy::ZeroCopy;
use crate::{fill, head, lists, sumdb, zipserve, ApiError, AppState};
use bytes::Bytes;
use store::ZipRef;

pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
pub const JSON: &str = "application/json; charset=utf-8";
pub const TEXT: &str = "text/plain; charset=utf-8";

pub async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    version: axum::http::Version,
    zero_copy: Option<Extension<ZeroCopy>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed: a Go module proxy answers GET and HEAD"),
        )
        .into_response();
    }
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/sumdb/") {
        return sumdb::handle(&state, rest, &Incoming::new(path, &headers), method == Method::HEAD).await;
    }
    // Large zips go out with sendfile where the connection supports it;
    // HTTP/2 frames bodies itself, so only HTTP/1 connections do.
    let zero_copy = zero_copy.is_some() && version <= axum::http::Version::HTTP_11;
    let incoming = Incoming { path, headers: &headers, zero_copy };
    if method == Method::GET {
        if let Some(resp) = kept_answer(&state, &incoming).await {
            return resp;
        }
    }
    let request = match gomod::parse_request(path) {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if method == Method::HEAD {
        return head::answer(&state, request).await.unwrap_or_else(IntoResponse::into_response);
    }
    match answer(&state, request, &incoming).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// What memory alone holds for a GET of `req.path`.
pub(crate) enum FromMemory {
    /// The answer, and the kind of file it is (counted as a cache hit).
    Answered(&'static str, Response),
    /// A kept zip record whose blob is not in memory: read from disk.
    Zip(Arc<ZipRef>),
}

/// The answer kept in memory for this exact request path, while it is
/// still valid (`kept`). Only answers to valid requests are kept, so a hit
/// needs no parsing. The gateway's front door ([`crate::Gateway`]) serves
/// these before the router; on a warm mirror most requests end there.
pub(crate) fn from_memory(state: &AppState, req: &Incoming<'_>) -> Option<FromMemory> {
    let epoch = state.store.catalog.epoch();
    Some(match state.kept.get(req.path, epoch)? {
        Answer::Recorded(body) => {
            let (kind, content_type) = if req.path.ends_with(".info") { ("info", JSON) } else { ("mod", TEXT) };
            FromMemory::Answered(kind, immutable(content_type, body))
        }
        Answer::Zip(zip) => match state.hot_zips.get(&zip.sha256) {
            Some(bytes) => FromMemory::Answered("zip", zipserve::respond(&zip, zipserve::Content::Memory(bytes), req)),
            None => FromMemory::Zip(zip),
        },
        Answer::Mutable { body, fetched_at_ms } => {
            let (kind, resp) = lists::kept_answer(state, req.path, body, fetched_at_ms)?;
            FromMemory::Answered(kind, resp)
        }
    })
}

/// [`from_memory`], and a kept zip record's blob read from disk. A zip
/// whose blob cannot be served here goes the long way (peers, a refetch).
async fn kept_answer(state: &Arc<AppState>, req: &Incoming<'_>) -> Option<Response> {
    match from_memory(state, req)? {
        FromMemory::Answered(kind, resp) => {
            state.metrics.hit(kind);
            Some(resp)
        }
        FromMemory::Zip(zip) => match zipserve::open(state, &zip).await {
            Ok(Some(blob)) => {
                state.metrics.hit("zip");
                Some(zipserve::respond(&zip, blob, req))
            }
            _ => None,
        },
    }
}

async fn answer(state: &Arc<AppState>, request: Request, req: &Incoming<'_>) -> Result<Response, ApiError> {
    match request {
        Request::List { module } => lists::list(state, &module, req).await,
        Request::Latest { module } => lists::latest(state, &module, req).await,
        Request::Info { module, version: VersionRef::Canonical(version) } => info(state, &module, &version, req).await,
        Request::Info { module, version: VersionRef::Query(query) } => lists::query(state, &module, &query, req).await,
        Request::Mod { module, version } => go_mod(state, &module, &version, req).await,
        Request::Zip { module, version } => zip(state, &module, &version, req).await,
    }
}

async fn info(state: &Arc<AppState>, module: &ModulePath, version: &Version, req: &Incoming<'_>) -> Result<Response, ApiError> {
    if let Some(body) = recorded(state, req.path, |catalog| catalog.info(module, version))? {
        state.metrics.hit("info");
        return Ok(immutable(JSON, body));
    }
    state.metrics.miss("info");
    if let Some(resp) = primary::elsewhere(state, req).await? {
        return Ok(resp);
    }
    Ok(immutable(JSON, fill::info(state, module, version).await?))
}

async fn go_mod(state: &Arc<AppState>, module: &ModulePath, version: &Version, req: &Incoming<'_>) -> Result<Response, ApiError> {
    if let Some(body) = recorded(state, req.path, |catalog| catalog.go_mod(module, version))? {
        state.metrics.hit("mod");
        return Ok(immutable(TEXT, body));
    }
    state.metrics.miss("mod");
    if let Some(resp) = primary::elsewhere(state, req).await? {
        return Ok(resp);
    }
    Ok(immutable(TEXT, fill::go_mod(state, module, version).await?))
}

async fn zip(state: &Arc<AppState>, module: &ModulePath, version: &Version, req: &Incoming<'_>) -> Result<Response, ApiError> {
    if let Some(zip) = zip_record(state, req.path, module, version)? {
        match zipserve::open(state, &zip).await {
            Ok(Some(blob)) => {
                state.metrics.hit("zip");
                return Ok(zipserve::respond(&zip, blob, req));
            }
            Ok(None) => tracing::info!(%module, %version, blob = %zip.sha256, "catalog names a blob this node does not hold"),
            Err(e) => tracing::warn!(%module, %version, error = %e.message, "stored zip unusable"),
        }
        if let Some(resp) = from_peers(state, &zip, req).await {
            return Ok(resp);
        }
    }
    state.metrics.miss("zip");
    if let Some(resp) = primary::elsewhere(state, req).await? {
        return Ok(resp);
    }
    let zip = fill::zip(state, module, version).await?;
    if let Some(blob) = zipserve::open(state, &zip).await? {
        return Ok(zipserve::respond(&zip, blob, req));
    }
    // The catalog kept another primary's zip (first writer wins), which may
    // not have reached this node yet.
    if let Some(resp) = from_peers(state, &zip, req).await {
        return Ok(resp);
    }
    Err(ApiError::internal(format!("zip for {module}@{version} is recorded but no node could supply its blob; retry")))
}

/// A version's `.info` or `.mod` as recorded in the catalog, then kept in
/// memory by request path ([`kept_answer`] serves it from there).
fn recorded(
    state: &AppState,
    path: &str,
    read: impl FnOnce(&store::Catalog) -> store::Result<Option<Vec<u8>>>,
) -> Result<Option<Bytes>, ApiError> {
    let epoch = state.store.catalog.epoch();
    let Some(body) = read(&state.store.catalog)? else { return Ok(None) };
    let body = Bytes::from(body);
    state.kept.put(path, epoch, Answer::Recorded(body.clone()));
    Ok(Some(body))
}

/// A version's zip record, then kept in memory by request path.
fn zip_record(state: &AppState, path: &str, module: &ModulePath, version: &Version) -> Result<Option<ZipRef>, ApiError> {
    let epoch = state.store.catalog.epoch();
    let Some(zip) = state.store.catalog.zip(module, version)? else { return Ok(None) };
    state.kept.put(path, epoch, Answer::Zip(Arc::new(zip.clone())));
    Ok(Some(zip))
}

/// Copies a zip's blob that this node lacks (replication lag) or just
/// found corrupt from a peer that holds it, keeps it, and serves it.
async fn from_peers(state: &Arc<AppState>, zip: &ZipRef, req: &Incoming<'_>) -> Option<Response> {
    match state.cluster.fetch_blob(zip).await {
        Ok(()) => match zipserve::open(state, zip).await {
            Ok(Some(blob)) => {
                state.metrics.hit("zip");
                Some(zipserve::respond(zip, blob, req))
            }
            _ => None,
        },
        Err(e) => {
            tracing::info!(blob = %zip.sha256, reason = %e, "no peer could supply the blob; handling as a miss");
            None
        }
    }
}

pub fn immutable(content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    resp
}

pub fn respond(content_type: &'static str, cache_control: HeaderValue, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, cache_control);
    resp
}
