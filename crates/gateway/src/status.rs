//! Health, readiness, metrics and the JSON status of this node.

use std::sync::Arc;

use api::BlobStatus;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::{ApiError, AppState};

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when this node can serve what it holds: its catalog answers a read
/// and its blob directory is there. Unlike `/readyz` it needs no primary and
/// no quorum, so a load balancer keeps a node that can still serve every
/// cached file during an election or with most of the cluster down.
pub async fn serving(State(state): State<Arc<AppState>>) -> Response {
    let catalog =
        state.store.catalog.db().get(store::CF_LOCAL, b"serving-probe").map(|_| ()).map_err(|e| format!("catalog unreadable: {e}"));
    let blobs = state.store.data_dir().join("blobs");
    let checked = catalog.and_then(|()| match std::fs::metadata(&blobs) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a directory", blobs.display())),
        Err(e) => Err(format!("{}: {e}", blobs.display())),
    });
    match checked {
        Ok(()) => "serving\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("cannot serve: {why}\n")).into_response(),
    }
}

/// Ready when the store is usable and its data directory is not full (the
/// reason says which directory and how much is free). (In a cluster this
/// also requires a known primary and an applied log.)
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.check_space().map_err(|e| e.to_string()).and_then(|()| state.cluster.ready().map_err(|e| e.to_string())) {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.store.blobs.stats();
    state.metrics.blob_bytes.set(stats.bytes as i64);
    state.metrics.blob_count.set(stats.count as i64);
    state.metrics.hot_zip_bytes.set(state.hot_zips.weight() as i64);
    state.metrics.kept_answer_bytes.set(state.kept.weight() as i64);
    state.metrics.cluster(&state.cluster.status());
    let mut resp = state.metrics.encode().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    resp
}

pub async fn status(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let stats = state.store.blobs.stats();
    Json(json!({
        "node_id": state.cfg.node_id,
        "cluster": state.cluster.status(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "data_dir": state.store.data_dir().display().to_string(),
        "upstream": state.upstream.describe(),
        "cache": {
            "list_ttl_seconds": state.cfg.cache.list_ttl.as_secs_f64(),
            "negative_ttl_seconds": state.cfg.cache.negative_ttl.as_secs_f64(),
        },
        "blobs": { "count": stats.count, "bytes": stats.bytes },
        "sumdb": sumdb_status(&state),
        "workers": state.workers.status(),
    }))
}

/// Each checksum database: where it is, and the newest verified tree head.
fn sumdb_status(state: &AppState) -> serde_json::Value {
    let dbs = state.cfg.sumdb.iter().enumerate().map(|(i, db)| {
        let head = state.store.catalog.sumdb_head(&db.name).ok().flatten();
        json!({
            "name": db.name,
            "url": db.url,
            "verifies_fetches": i == 0,
            "tree_size": head.as_ref().map(|h| h.size),
            "tree_fetched_at_ms": head.as_ref().map(|h| h.fetched_at_ms),
        })
    });
    serde_json::Value::Array(dbs.collect())
}

/// `GET /api/v1/blobs/{sha256}`: whether this node holds the blob, and
/// which nodes placement says hold it.
pub async fn blob(State(state): State<Arc<AppState>>, Path(sha256): Path<String>) -> Response {
    let Ok(sha) = sha256.parse::<store::Sha256>() else {
        return ApiError::bad_request(format!("{sha256:?} is not a sha256 (64 lowercase hex digits)")).into_response();
    };
    let blob = state.cluster.blob(&sha).unwrap_or_else(|| {
        let size = std::fs::metadata(state.store.blobs.path_of(&sha)).ok().map(|m| m.len());
        BlobStatus { sha256: sha.to_hex(), local: size.is_some(), size, nodes: Vec::new(), queued: None }
    });
    Json(blob).into_response()
}
