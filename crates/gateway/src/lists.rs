//! The mutable answers: `@v/list`, `@latest` and `.info` queries.
//!
//! Lists and `@latest` are cached for `cache.list_ttl`, then refreshed. When
//! upstream fails the stale copy is served, and lists always include the
//! versions this mirror holds, so an offline mirror still lists what it has.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use gomod::{ModulePath, Version};
use store::{CatalogOp, LatestRecord, ListRecord};

use crate::fill::{commit_or_relay, fetch_small, negative_guard};
use crate::kept::Answer;
use crate::primary::{self, Incoming};
use crate::proxy::{respond, JSON, TEXT};
use crate::state::now_ms;
use crate::{ApiError, AppState};

const MAX_LIST: u64 = 16 << 20;
const MAX_INFO: u64 = 1 << 20;

pub async fn list(state: &Arc<AppState>, module: &ModulePath, req: &Incoming<'_>) -> Result<Response, ApiError> {
    let epoch = state.store.catalog.epoch();
    let cached = state.store.catalog.list(module)?;
    let mut keep = None;
    let upstream_versions = match &cached {
        Some(rec) if fresh(rec.fetched_at_ms, state.cfg.cache.list_ttl) => {
            state.metrics.hit("list");
            keep = Some(rec.fetched_at_ms);
            rec.versions.clone()
        }
        _ => {
            state.metrics.miss("list");
            match primary::elsewhere(state, req).await {
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) => match refresh_list(state, module).await {
                    Ok(rec) => rec.versions,
                    Err(e) => fall_back_list(state, module, cached, e)?,
                },
                // No primary to refresh it: what this node has beats a 503.
                Err(e) => fall_back_list(state, module, cached, e)?,
            }
        }
    };
    let body = Bytes::from(merge_versions(upstream_versions, state.store.catalog.versions(module)?));
    if let Some(fetched_at_ms) = keep {
        state.kept.put(req.path, epoch, Answer::Mutable { body: body.clone(), fetched_at_ms });
    }
    Ok(respond(TEXT, mutable_cache(state), body))
}

/// A list or `@latest` answer kept in memory (by `proxy::from_memory`),
/// while it is fresh, and which of the two it is.
pub fn kept_answer(state: &AppState, path: &str, body: Bytes, fetched_at_ms: u64) -> Option<(&'static str, Response)> {
    if !fresh(fetched_at_ms, state.cfg.cache.list_ttl) {
        return None;
    }
    let (kind, content_type) = if path.ends_with("/@latest") { ("latest", JSON) } else { ("list", TEXT) };
    Some((kind, respond(content_type, mutable_cache(state), body)))
}

fn fall_back_list(state: &AppState, module: &ModulePath, cached: Option<ListRecord>, err: ApiError) -> Result<Vec<String>, ApiError> {
    let held = state.store.catalog.versions(module)?;
    if cached.is_none() && held.is_empty() {
        return Err(err);
    }
    state.metrics.stale("list");
    tracing::warn!(%module, error = %err.message, "serving cached version list: it could not be refreshed");
    Ok(cached.map(|c| c.versions).unwrap_or_default())
}

async fn refresh_list(state: &Arc<AppState>, module: &ModulePath) -> Result<ListRecord, ApiError> {
    let key = format!("list {}", module.escaped());
    let (st, m) = (state.clone(), module.clone());
    state
        .list_fills
        .run(module.clone(), move || async move {
            negative_guard(&st, key, async {
                let what = format!("{m}/@v/list");
                let body = fetch_small(&st, "list", &m, "@v/list", MAX_LIST, &what).await?;
                let rec = ListRecord { versions: parse_list(&body), fetched_at_ms: now_ms() };
                // A list too large for one raft entry is served, not cached.
                commit_or_relay(&st, CatalogOp::PutList { module: m.clone(), list: rec.clone() }, "list", &what).await?;
                Ok(rec)
            })
            .await
        })
        .await
}

pub async fn latest(state: &Arc<AppState>, module: &ModulePath, req: &Incoming<'_>) -> Result<Response, ApiError> {
    let epoch = state.store.catalog.epoch();
    let cached = state.store.catalog.latest(module)?;
    if let Some(rec) = &cached {
        if fresh(rec.fetched_at_ms, state.cfg.cache.list_ttl) {
            state.metrics.hit("latest");
            let body = Bytes::from(rec.info.clone());
            state.kept.put(req.path, epoch, Answer::Mutable { body: body.clone(), fetched_at_ms: rec.fetched_at_ms });
            return Ok(respond(JSON, mutable_cache(state), body));
        }
    }
    state.metrics.miss("latest");
    match primary::elsewhere(state, req).await {
        Ok(Some(resp)) => return Ok(resp),
        Ok(None) => {}
        Err(e) => return stale_latest(state, module, cached, e),
    }
    let key = format!("latest {}", module.escaped());
    let (st, m) = (state.clone(), module.clone());
    let fetched = state
        .file_fills
        .run(key.clone(), move || async move {
            negative_guard(&st, key, async {
                let what = format!("{m}/@latest");
                let body = fetch_small(&st, "latest", &m, "@latest", MAX_INFO, &what).await?;
                gomod::parse_info(&body).map_err(|e| ApiError::bad_gateway(format!("upstream sent an invalid {what}: {e}")))?;
                let info = String::from_utf8(body).map_err(|_| ApiError::bad_gateway(format!("upstream {what} is not UTF-8")))?;
                let rec = LatestRecord { info: info.clone(), fetched_at_ms: now_ms() };
                commit_or_relay(&st, CatalogOp::PutLatest { module: m.clone(), latest: rec }, "@latest", &what).await?;
                Ok(info.into_bytes())
            })
            .await
        })
        .await;
    match fetched {
        Ok(body) => Ok(respond(JSON, mutable_cache(state), body)),
        // With lookups switched off, "not found" says nothing about the module.
        Err(e) if e.is_not_found() && !state.upstream.is_off(module) => Err(e),
        Err(e) => stale_latest(state, module, cached, e),
    }
}

fn stale_latest(state: &AppState, module: &ModulePath, cached: Option<LatestRecord>, e: ApiError) -> Result<Response, ApiError> {
    let fallback = match cached {
        Some(rec) => Some(rec.info.into_bytes()),
        None => newest_held_info(state, module)?,
    };
    let body = fallback.ok_or(e.clone())?;
    state.metrics.stale("latest");
    tracing::warn!(%module, error = %e.message, "serving cached @latest: it could not be refreshed");
    Ok(respond(JSON, mutable_cache(state), body))
}

/// `.info` for a query (branch, tag, commit prefix): resolved by upstream
/// every time, never stored as immutable.
pub async fn query(state: &Arc<AppState>, module: &ModulePath, query: &str, req: &Incoming<'_>) -> Result<Response, ApiError> {
    state.metrics.miss("query");
    if let Some(resp) = primary::elsewhere(state, req).await? {
        return Ok(resp);
    }
    let what = format!("{module}@{query}.info");
    let suffix = format!("@v/{}.info", gomod::escape_string(query));
    let key = format!("query {}@{}", module.escaped(), gomod::escape_string(query));
    let (st, m, k, w) = (state.clone(), module.clone(), key.clone(), what.clone());
    // Once per query however many ask at the same time; never stored.
    let body = state
        .file_fills
        .run(key, move || async move { negative_guard(&st, k, fetch_small(&st, "query", &m, &suffix, MAX_INFO, &w)).await })
        .await?;
    gomod::parse_info(&body).map_err(|e| ApiError::bad_gateway(format!("upstream sent an invalid {what}: {e}")))?;
    Ok(respond(JSON, mutable_cache(state), body))
}

/// The `.info` of the highest version held (releases before pre-releases
/// before pseudo-versions, as the go command prefers), for an offline `@latest`.
fn newest_held_info(state: &AppState, module: &ModulePath) -> Result<Option<Vec<u8>>, ApiError> {
    let mut held = state.store.catalog.versions(module)?;
    held.sort_by_key(|v| (!v.is_pseudo(), !v.is_prerelease(), v.clone()));
    for v in held.iter().rev() {
        if let Some(info) = state.store.catalog.info(module, v)? {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// Keeps only canonical tagged versions: non-canonical entries break the
/// go command and pseudo-versions cost it extra requests.
pub fn parse_list(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|v| Version::new(v).ok())
        .filter(|v| !v.is_pseudo())
        .map(|v| v.as_str().to_string())
        .collect();
    out.sort_by(|a, b| gomod::compare(a, b));
    out.dedup();
    out
}

fn merge_versions(mut listed: Vec<String>, held: Vec<Version>) -> String {
    listed.extend(held.into_iter().filter(|v| !v.is_pseudo()).map(|v| v.as_str().to_string()));
    listed.sort_by(|a, b| gomod::compare(a, b));
    listed.dedup();
    listed.iter().map(|v| format!("{v}\n")).collect()
}

/// Younger than `ttl`. A fetch time in the future (the clock of the primary
/// that fetched it ran ahead) counts as stale, not as fresh forever.
fn fresh(fetched_at_ms: u64, ttl: Duration) -> bool {
    fresh_at(now_ms(), fetched_at_ms, ttl)
}

fn fresh_at(now_ms: u64, fetched_at_ms: u64, ttl: Duration) -> bool {
    fetched_at_ms <= now_ms && now_ms - fetched_at_ms < ttl.as_millis() as u64
}

fn mutable_cache(state: &AppState) -> HeaderValue {
    state.list_cache_control.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_keeps_canonical_tags_only() {
        let body = b"v1.0.0\nv0.2\nv0.3.0+meta\nv1.1.0 2019-01-01T00:00:00Z\n\nv0.0.0-20191109021931-daa7c04131f5\nv2.0.0+incompatible\r\nv1.0.0\n";
        assert_eq!(parse_list(body), ["v1.0.0", "v1.1.0", "v2.0.0+incompatible"]);
    }

    #[test]
    fn a_list_is_fresh_for_its_ttl_and_stale_when_fetched_in_the_future() {
        let (now, ttl) = (1_000_000, Duration::from_secs(60));
        assert!(fresh_at(now, now, ttl));
        assert!(fresh_at(now, now - 59_999, ttl));
        assert!(!fresh_at(now, now - 60_000, ttl));
        assert!(!fresh_at(now, now + 1, ttl), "fetched 1 ms in the future");
        assert!(!fresh_at(now, now + 3_600_000, ttl), "fetched an hour in the future");
        assert!(!fresh_at(now, u64::MAX, ttl));
    }

    #[test]
    fn merge_adds_held_versions_in_order() {
        let held = vec![Version::new("v1.3.0").unwrap(), Version::new("v0.0.0-20191109021931-daa7c04131f5").unwrap()];
        assert_eq!(merge_versions(vec!["v1.10.0".into(), "v1.2.0".into()], held), "v1.2.0\nv1.3.0\nv1.10.0\n");
    }
}
