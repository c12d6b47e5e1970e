//! Verify on demand (`flotillactl verify`): re-hash every referenced local
//! blob now, at full speed, and repair each corrupt copy from a peer before
//! answering. The periodic `scrub` does the same slowly in the background.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use store::Sha256;

use crate::anti_entropy::referenced;
use crate::inner::{now_ms, Inner};
use crate::placement::Placed;
use crate::{Error, Result};

/// What one verify pass found on this node.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Blobs whose content matched their address, and their bytes.
    pub checked: u64,
    pub bytes: u64,
    /// Referenced blobs this node does not hold (yet): replication's business.
    pub missing: u64,
    /// Copies that did not match: quarantined, then fetched again.
    pub corrupt: Vec<Repair>,
    /// Blobs that could not be read, with the reason.
    pub unreadable: Vec<(Sha256, String)>,
}

/// A corrupt copy and whether a good one replaced it.
#[derive(Clone, Debug)]
pub struct Repair {
    pub sha: Sha256,
    pub size: u64,
    /// `Err`: the copy is still missing (it stays queued) and why.
    pub repaired: Result<()>,
}

pub(crate) async fn verify(inner: &Arc<Inner>) -> Result<VerifyReport> {
    let catalog = inner.catalog.clone();
    let wanted = tokio::task::spawn_blocking(move || referenced(&catalog))
        .await
        .map_err(|e| Error::task("verify", e))?
        .map_err(|e| Error::store("reading the catalog", e))?;
    let mut report = VerifyReport::default();
    for (sha, size) in wanted {
        let blobs = inner.blobs.clone();
        let checked = tokio::task::spawn_blocking(move || blobs.verify(&sha)).await;
        match checked {
            Ok(Ok(true)) => {
                report.checked += 1;
                report.bytes += size;
            }
            Ok(Ok(false)) => report.missing += 1,
            Ok(Err(store::Error::Corrupt { .. })) => report.corrupt.push(repair(inner, sha, size).await),
            Ok(Err(e)) => report.unreadable.push((sha, e.to_string())),
            Err(e) => report.unreadable.push((sha, format!("verify task failed: {e}"))),
        }
    }
    tracing::info!(
        checked = report.checked,
        bytes = report.bytes,
        missing = report.missing,
        corrupt = report.corrupt.len(),
        unreadable = report.unreadable.len(),
        "verify pass done"
    );
    Ok(report)
}

/// The store has quarantined the copy: tell the primary it is gone, queue it
/// (so a failed pull is retried) and pull it from a peer now.
async fn repair(inner: &Arc<Inner>, sha: Sha256, size: u64) -> Repair {
    inner.stats.corrupt.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(blob = %sha, "verify found a corrupt blob; fetching it again from a peer");
    let _ = inner.reports.send(Placed::Lost(sha));
    inner.queue.push(sha, size, now_ms());
    let repaired = match inner.pull_shared(sha, size).await {
        Ok(_) => {
            inner.stored(sha);
            Ok(())
        }
        Err(e) => Err(e),
    };
    Repair { sha, size, repaired }
}
