//! Filling misses: fetch from upstream once per key, verify, store, and only
//! then answer. A fill that fails leaves nothing behind.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Instant;

use gomod::{ModulePath, Version};
use store::{CatalogOp, Sha256Writer, VersionParts, ZipRef};
use tokio::io::AsyncWriteExt;

use crate::error::from_upstream;
use crate::{modcheck, sumdb};
use crate::{ApiError, AppState};

const MAX_INFO: u64 = 1 << 20;

pub async fn info(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Result<Vec<u8>, ApiError> {
    let key = format!("info {}@{}", module.escaped(), version.escaped());
    let (st, m, v) = (state.clone(), module.clone(), version.clone());
    let started = Instant::now();
    let result = state.file_fills.run(key.clone(), move || async move { negative_guard(&st, key, fetch_info(&st, &m, &v)).await }).await;
    state.recent.record("info", module, version, started.elapsed(), &result);
    result
}

pub async fn go_mod(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Result<Vec<u8>, ApiError> {
    let key = format!("mod {}@{}", module.escaped(), version.escaped());
    let (st, m, v) = (state.clone(), module.clone(), version.clone());
    let started = Instant::now();
    let result = state.file_fills.run(key.clone(), move || async move { negative_guard(&st, key, fetch_mod(&st, &m, &v)).await }).await;
    state.recent.record("mod", module, version, started.elapsed(), &result);
    result
}

pub async fn zip(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Result<ZipRef, ApiError> {
    let key = format!("zip {}@{}", module.escaped(), version.escaped());
    let (st, m, v) = (state.clone(), module.clone(), version.clone());
    let started = Instant::now();
    let result = state.zip_fills.run(key.clone(), move || async move { negative_guard(&st, key, fetch_zip(&st, &m, &v)).await }).await;
    state.recent.record("zip", module, version, started.elapsed(), &result);
    result
}

/// Answers from the negative cache when upstream recently said "not found",
/// and remembers a new "not found" for `cache.negative_ttl`.
pub async fn negative_guard<T>(
    state: &AppState,
    key: String,
    fetch: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    if let Some(err) = state.negative.get(&key) {
        return Err(err);
    }
    let result = fetch.await;
    if let Err(e) = &result {
        if e.is_not_found() {
            state.negative.insert(key, e.clone());
        }
    }
    result
}

async fn fetch_info(state: &AppState, module: &ModulePath, version: &Version) -> Result<Vec<u8>, ApiError> {
    let what = format!("{module}@{version}.info");
    let body = fetch_small(state, "info", module, &format!("@v/{}.info", version.escaped()), MAX_INFO, &what).await?;
    let info = gomod::parse_info(&body).map_err(|e| ApiError::bad_gateway(format!("upstream sent an invalid {what}: {e}")))?;
    if info.version != version.as_str() {
        return Err(ApiError::bad_gateway(format!("upstream answered {what} with version {:?}; refusing to cache it", info.version)));
    }
    if !put(state, module, version, VersionParts { info: Some(body.clone()), ..Default::default() }, ".info", &what).await? {
        return Ok(body);
    }
    tracing::info!(%module, %version, "cached .info");
    Ok(recorded(&what, body, state.store.catalog.info(module, version)?))
}

async fn fetch_mod(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Result<Vec<u8>, ApiError> {
    let what = format!("{module}@{version}.mod");
    let limit = state.cfg.zip_limits.max_go_mod;
    let body = fetch_small(state, "mod", module, &format!("@v/{}.mod", version.escaped()), limit, &what).await?;
    modcheck::check_is_go_mod(&body, &what)?;
    modcheck::check_matches_zip(state, module, version, &body, &what).await?;
    let h1 = gomod::h1_go_mod(&body);
    sumdb::check_go_mod(state, module, version, &h1, &what).await?;
    if !put(state, module, version, VersionParts { go_mod: Some(body.clone()), ..Default::default() }, ".mod", &what).await? {
        return Ok(body);
    }
    tracing::info!(%module, %version, %h1, "cached .mod");
    Ok(recorded(&what, body, state.store.catalog.go_mod(module, version)?))
}

pub async fn fetch_small(
    state: &AppState,
    kind: &'static str,
    module: &ModulePath,
    suffix: &str,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, ApiError> {
    let started = Instant::now();
    let result = state.upstream.get(module, suffix, limit).await;
    state.metrics.upstream(kind, outcome(&result), started.elapsed());
    match result {
        Ok(fetched) => Ok(fetched.body.to_vec()),
        Err(e) => {
            if !e.is_not_found() {
                tracing::warn!(what, error = %e, "upstream fetch failed");
            }
            Err(from_upstream(what, &e))
        }
    }
}

async fn fetch_zip(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Result<ZipRef, ApiError> {
    if let Some(existing) = stored_zip(state, module, version)? {
        return Ok(existing);
    }
    let what = format!("{module}@{version}.zip");
    let _slot = match state.fill_slots.try_acquire() {
        Ok(slot) => slot,
        Err(_) => {
            tracing::debug!(what, max = state.cfg.gateway.max_fills, "zip fill waits for a free slot (gateway.max_fills)");
            state.fill_slots.acquire().await.map_err(|_| ApiError::internal("fill slots closed"))?
        }
    };
    let limits = state.cfg.zip_limits;
    disk_space(state)?;
    let mut temp = state.store.blobs.temp()?;
    let file = temp.take_file().ok_or_else(|| ApiError::internal("temp file missing"))?;
    let mut writer = Sha256Writer::new(tokio::fs::File::from_std(file));
    let started = Instant::now();
    let suffix = format!("@v/{}.zip", version.escaped());
    let result = state.upstream.download(module, &suffix, limits.max_zip_size, &mut writer).await;
    state.metrics.upstream("zip", outcome(&result), started.elapsed());
    if let Err(upstream::Error::Io(e)) = &result {
        if store::is_disk_full(e) {
            let why = store::DiskFull { data_dir: state.store.data_dir().to_path_buf(), free: state.store.free_bytes() };
            tracing::error!(what, "{why}; the partial download was discarded");
            return Err(ApiError::insufficient_storage(format!("cannot store {what}: {why}")));
        }
    }
    if let Err(e) = &result {
        tracing::warn!(what, error = %e, "upstream zip download failed; partial file discarded");
        return Err(from_upstream(&what, e));
    }
    writer.flush().await.map_err(|e| ApiError::internal(format!("writing {what}: {e}")))?;
    let (file, sha, size) = writer.finish();
    temp.put_back(file.into_std().await);

    let path = temp.path().to_path_buf();
    let (m, v) = (module.clone(), version.clone());
    let summary = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| gomod::Error::InvalidZip(format!("reopen: {e}")))?;
        gomod::check_zip(BufReader::new(file), &m, &v, &limits)
    })
    .await
    .map_err(|e| ApiError::internal(format!("zip check task failed: {e}")))?
    .map_err(|e| {
        tracing::warn!(what, error = %e, "upstream zip failed verification; nothing stored");
        ApiError::bad_gateway(format!("upstream zip {what} failed verification, nothing was stored: {e}"))
    })?;

    modcheck::check_zip_matches_mod(state, module, version, summary.go_mod.as_deref(), &what)?;
    sumdb::check_zip(state, module, version, &summary.h1, &what).await?;
    // Pinned from before the blob is written until its catalog entry is
    // committed: garbage collection must not delete it in between (a purged
    // version fetched again while a collection runs).
    // (Taken off the executor: it waits while a collection holds its lock.)
    let blobs = state.store.blobs.clone();
    let _pin = tokio::task::spawn_blocking(move || {
        let pin = blobs.pin(&sha);
        // Hashed while it streamed in: committed without reading it again.
        blobs.commit_hashed(temp, sha).map(|_| pin)
    })
    .await
    .map_err(|e| ApiError::internal(format!("blob commit task failed: {e}")))??;
    if let Some(known) = state.store.catalog.zip(module, version)? {
        if known.h1 != summary.h1 {
            tracing::error!(what, known = %known.h1, got = %summary.h1, "upstream zip differs from the one this mirror recorded; refused");
            return Err(ApiError::bad_gateway(format!(
                "upstream zip {what} hashes to {} but this mirror recorded {} for it; refusing the changed content",
                summary.h1, known.h1
            )));
        }
    }
    let zip = ZipRef { sha256: sha, size, h1: summary.h1, fetched_at_ms: crate::state::now_ms() };
    // A zip's entry is a few hundred bytes: never too large for the log.
    put(state, module, version, VersionParts { zip: Some(zip.clone()), ..Default::default() }, ".zip", &what).await?;
    tracing::info!(%module, %version, size, sha256 = %zip.sha256, h1 = %zip.h1, took_ms = started.elapsed().as_millis() as u64, "cached .zip");
    Ok(recorded(&what, zip, state.store.catalog.zip(module, version)?))
}

/// What the catalog holds after a write: `ours`, unless another primary
/// recorded the part first (first writer wins), then that.
fn recorded<T: PartialEq>(what: &str, ours: T, stored: Option<T>) -> T {
    match stored {
        Some(stored) if stored != ours => {
            tracing::warn!(what, "upstream's copy differs from the one already recorded; serving the recorded one");
            stored
        }
        _ => ours,
    }
}

/// A zip another fill stored while this one waited, if its blob is here.
fn stored_zip(state: &AppState, module: &ModulePath, version: &Version) -> Result<Option<ZipRef>, ApiError> {
    let Some(zip) = state.store.catalog.zip(module, version)? else { return Ok(None) };
    Ok(state.store.blobs.exists(&zip.sha256).then_some(zip))
}

/// 507 with the reason when the data directory is (nearly) full: a fill
/// stores nothing then, and resumes by itself once space is freed.
fn disk_space(state: &AppState) -> Result<(), ApiError> {
    state.store.check_space().map_err(|why| {
        tracing::warn!("refusing a fill: {why}");
        ApiError::insufficient_storage(why.to_string())
    })
}

/// Records `parts` of a version; `Ok(false)` when they are too large for the
/// log and were not recorded (see [`commit_or_relay`]).
async fn put(
    state: &AppState,
    module: &ModulePath,
    version: &Version,
    parts: VersionParts,
    kind: &str,
    what: &str,
) -> Result<bool, ApiError> {
    disk_space(state)?;
    commit_or_relay(state, CatalogOp::PutVersion { module: module.clone(), version: version.clone(), parts }, kind, what).await
}

/// Commits `op`; `Ok(false)` when the cluster refused it as larger than one
/// raft entry may be (`ClusterError::TooLarge`, decided by the raft crate
/// for every command: an entry must fit in one AppendEntries, else it
/// stalls the log for everyone). The caller then answers with what it
/// fetched, relayed from upstream and not cached. A single node caches
/// everything.
pub async fn commit_or_relay(state: &AppState, op: CatalogOp, kind: &str, what: &str) -> Result<bool, ApiError> {
    match state.cluster.commit(op).await {
        Ok(()) => Ok(true),
        Err(crate::ClusterError::TooLarge { bytes, limit }) => {
            tracing::info!(
                what,
                entry_bytes = bytes,
                "not caching a {kind} larger than {limit} bytes as a raft entry; relayed from upstream"
            );
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn outcome<T>(result: &Result<T, upstream::Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) if e.is_not_found() => "not_found",
        Err(upstream::Error::Timeout { .. }) => "timeout",
        Err(_) => "error",
    }
}
