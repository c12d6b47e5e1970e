//! A follower that lacks the blob of a zip the catalog has (the replicator
//! has not copied it yet) fetches it from the primary on demand, verifies
//! its sha256 and keeps it, instead of answering with a redirect forever.

use std::sync::Arc;

use futures::StreamExt;
use store::{Sha256Writer, ZipRef};
use tokio::io::AsyncWriteExt;

use crate::primary::FORWARDED;
use crate::{ApiError, AppState};

/// Copies the blob of `zip` from `url` (the primary's gateway URL of the same
/// zip) into this node's blob store. One copy per blob however many ask.
pub async fn fetch(state: &Arc<AppState>, zip: &ZipRef, url: String) -> Result<ZipRef, ApiError> {
    let key = format!("peer {}", zip.sha256);
    let (st, zip) = (state.clone(), zip.clone());
    state.zip_fills.run(key, move || async move { copy(&st, zip, url).await }).await
}

async fn copy(state: &AppState, zip: ZipRef, url: String) -> Result<ZipRef, ApiError> {
    let sha = zip.sha().map_err(|e| ApiError::internal(format!("catalog entry: {e}")))?;
    if state.store.blobs.exists(&sha) {
        return Ok(zip);
    }
    let fail = |why: String| ApiError::bad_gateway(format!("copying blob {} from {url}: {why}", zip.sha256));
    let resp = state.peers.get(&url).header(FORWARDED, "1").send().await.map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("peer answered {}", resp.status())));
    }
    let mut temp = state.store.blobs.temp()?;
    let file = temp.take_file().ok_or_else(|| ApiError::internal("temp file missing"))?;
    let mut writer = Sha256Writer::new(tokio::fs::File::from_std(file));
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail(e.to_string()))?;
        if writer.written() + chunk.len() as u64 > zip.size {
            return Err(fail(format!("peer sent more than the {} bytes the catalog records", zip.size)));
        }
        writer.write_all(&chunk).await.map_err(|e| ApiError::internal(format!("writing temp blob: {e}")))?;
    }
    writer.flush().await.map_err(|e| ApiError::internal(format!("writing temp blob: {e}")))?;
    let (file, actual, size) = writer.finish();
    if actual != sha {
        tracing::warn!(blob = %zip.sha256, %actual, size, %url, "peer sent a blob that does not match the catalog; discarded");
        return Err(fail(format!("content hashes to {actual}, not the catalog's sha256")));
    }
    temp.put_back(file.into_std().await);
    let blobs = state.store.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.commit(temp, &sha))
        .await
        .map_err(|e| ApiError::internal(format!("blob commit task failed: {e}")))??;
    tracing::info!(blob = %zip.sha256, size, %url, "copied blob from the primary");
    Ok(zip)
}
