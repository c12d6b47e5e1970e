//! `/sumdb/<name>/supported|latest|lookup/…|tile/…` for the go command
//! (`GOPROXY=<mirror>` makes it ask `<mirror>/sumdb/<name>/supported` and
//! then send its checksum database traffic through the mirror).
//!
//! Every node answers from its catalog: recorded lookups and tiles (a
//! narrower tile is a prefix of a wider recorded one), and the newest
//! verified tree head. What it lacks goes to the primary, which fetches it
//! once, verifies it and records it through the catalog.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gomod::sumdb::{stored_hash_index, Tile, TILE_HEIGHT};
use gomod::{ModulePath, Version};

use super::log::{accept_head, fetch, lookup, read_hashes, recorded_tile};
use super::SumdbConfig;
use crate::cluster::Role;
use crate::primary::{self, Incoming};
use crate::proxy::{immutable, respond, TEXT};
use crate::state::now_ms;
use crate::{ApiError, AppState};

const BINARY: &str = "application/octet-stream";
const SHORT: &str = "no-cache";

/// `head`: a HEAD request, answered from this node's catalog alone (like
/// HEAD of module files: never fetched, never sent to the primary).
pub(crate) async fn handle(state: &Arc<AppState>, rest: &str, req: &Incoming<'_>, head: bool) -> Response {
    let (name, what) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(db) = state.cfg.sumdb.iter().find(|d| d.name == name) else {
        let known: Vec<&str> = state.cfg.sumdb.iter().map(|d| d.name.as_str()).collect();
        return ApiError::not_found(format!(
            "checksum database {name:?} is not proxied by this mirror (it proxies: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
        .into_response();
    };
    let result = match what {
        "supported" => Ok(respond(TEXT, HeaderValue::from_static(SHORT), Vec::new())),
        "latest" => latest(state, db, req, head).await,
        w if w.starts_with("lookup/") => lookup_answer(state, db, &w["lookup/".len()..], req, head).await,
        w if w.starts_with("tile/") => tile_answer(state, db, w, req, head).await,
        _ => Err(ApiError::not_found(format!("not found: a checksum database serves supported, latest, lookup/ and tile/, not {what:?}"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// What this node lacks: sent to the primary, or for HEAD, not found.
async fn elsewhere(state: &Arc<AppState>, req: &Incoming<'_>, head: bool) -> Result<Option<Response>, ApiError> {
    if head {
        return Err(ApiError::not_found("not found: this node holds no copy (HEAD answers from the node's own catalog)"));
    }
    primary::elsewhere(state, req).await
}

fn is_primary(state: &AppState) -> bool {
    matches!(state.cluster.role(), Role::Standalone | Role::Primary)
}

/// The newest verified tree head: a follower serves its recorded one; the
/// primary refreshes it after `cache.list_ttl` and serves the recorded one
/// if the database cannot be reached (never one that fails verification).
async fn latest(state: &Arc<AppState>, db: &SumdbConfig, req: &Incoming<'_>, head_only: bool) -> Result<Response, ApiError> {
    let head = state.store.catalog.sumdb_head(&db.name)?;
    if let Some(head) = &head {
        let age = Duration::from_millis(now_ms().saturating_sub(head.fetched_at_ms));
        if head_only || !is_primary(state) || (head.fetched_at_ms <= now_ms() && age < state.cfg.cache.list_ttl) {
            state.metrics.hit("sumdb_latest");
            return Ok(respond(TEXT, HeaderValue::from_static(SHORT), head.note.clone().into_bytes()));
        }
    }
    if let Some(resp) = elsewhere(state, req, head_only).await? {
        return Ok(resp);
    }
    state.metrics.miss("sumdb_latest");
    match fetch(state, db, "latest").await {
        Ok(signed) => {
            accept_head(state, db, &signed, true).await?;
            let newest = state.store.catalog.sumdb_head(&db.name)?.map(|h| h.note.into_bytes()).unwrap_or(signed);
            Ok(respond(TEXT, HeaderValue::from_static(SHORT), newest))
        }
        Err(e) => match head {
            Some(head) => {
                tracing::warn!(sumdb = %db.name, error = %e.message, "checksum database unreachable; serving the recorded tree head");
                state.metrics.stale("sumdb_latest");
                Ok(respond(TEXT, HeaderValue::from_static(SHORT), head.note.into_bytes()))
            }
            None => Err(e),
        },
    }
}

async fn lookup_answer(state: &Arc<AppState>, db: &SumdbConfig, spec: &str, req: &Incoming<'_>, head: bool) -> Result<Response, ApiError> {
    let (m, v) = spec.rsplit_once('@').ok_or_else(|| ApiError::bad_request(format!("invalid lookup {spec:?}: want <module>@<version>")))?;
    let module = ModulePath::from_escaped(m)?;
    let version = Version::from_escaped(v)?;
    if state.upstream.is_private(&module) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{module} matches upstream.private: it is never looked up in a public checksum database (set GONOSUMDB or GOPRIVATE for it on the client)"),
        ));
    }
    let key = format!("lookup/{}@{}", module.escaped(), version.escaped());
    if let Some(body) = state.store.catalog.sumdb(&db.name, &key)? {
        state.metrics.hit("sumdb_lookup");
        return Ok(immutable(TEXT, body));
    }
    if let Some(resp) = elsewhere(state, req, head).await? {
        return Ok(resp);
    }
    state.metrics.miss("sumdb_lookup");
    Ok(immutable(TEXT, lookup(state, db, &module, &version).await?))
}

async fn tile_answer(state: &Arc<AppState>, db: &SumdbConfig, path: &str, req: &Incoming<'_>, head: bool) -> Result<Response, ApiError> {
    let tile = Tile::parse_path(path)?;
    if tile.h != TILE_HEIGHT {
        return Err(ApiError::not_found(format!("not found: {path}: checksum databases serve tiles of height {TILE_HEIGHT}")));
    }
    if tile.n >= 1 << 40 || tile.l >= 6 {
        return Err(ApiError::not_found(format!("not found: {path} lies beyond any checksum database's tree")));
    }
    let answer =
        |data: Vec<u8>| if tile.is_full() { immutable(BINARY, data) } else { respond(BINARY, HeaderValue::from_static(SHORT), data) };
    if !tile.is_data() {
        if let Some(data) = recorded_tile(state, db, &tile)? {
            state.metrics.hit("sumdb_tile");
            return Ok(answer(data));
        }
    }
    if let Some(resp) = elsewhere(state, req, head).await? {
        return Ok(resp);
    }
    state.metrics.miss("sumdb_tile");
    if tile.is_data() {
        // Record data is only passed through: the go command does not read it.
        return Ok(respond(TEXT, HeaderValue::from_static(SHORT), fetch(state, db, path).await?));
    }
    let end = (tile.n << tile.h) + i64::from(tile.w);
    let covers = |size: i64| size >> (tile.l as u32 * tile.h) >= end;
    let mut head = state.store.catalog.sumdb_head(&db.name)?.map(|h| h.size);
    if !head.is_some_and(covers) {
        let signed = fetch(state, db, "latest").await?;
        accept_head(state, db, &signed, true).await?;
        head = state.store.catalog.sumdb_head(&db.name)?.map(|h| h.size);
    }
    let Some(recorded) = state.store.catalog.sumdb_head(&db.name)?.filter(|h| covers(h.size)) else {
        return Err(ApiError::not_found(format!(
            "not found: {path} lies beyond the newest verified tree head of {} ({head:?} records)",
            db.name
        )));
    };
    let text = gomod::sumdb::open_note(recorded.note.as_bytes(), &db.key).and_then(gomod::sumdb::parse_tree);
    let tree = text.map_err(|e| ApiError::internal(format!("recorded tree head of {} is unreadable: {e}", db.name)))?;
    read_hashes(state, db, tree, &[stored_hash_index(tile.l as u32 * tile.h, end - 1)]).await?;
    match recorded_tile(state, db, &tile)? {
        Some(data) => Ok(answer(data)),
        None => Err(ApiError::internal(format!("{path} was verified but is not recorded; retry"))),
    }
}
