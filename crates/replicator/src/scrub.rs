//! Scrub: re-hashes every referenced local blob at a bounded rate; a
//! corrupt copy is quarantined by the store and fetched again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::anti_entropy::referenced;
use crate::inner::Inner;
use crate::throttle::Throttle;

/// Wait before the first scrub pass after start-up.
const FIRST_SCRUB_DELAY: Duration = Duration::from_secs(600);

/// Re-hashes every referenced local blob, `scrub_rate` bytes per second,
/// one pass every `scrub_interval`.
pub(crate) async fn scrub(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    if inner.cfg.scrub_rate == 0 {
        return;
    }
    let throttle = Throttle::new(inner.cfg.scrub_rate);
    let mut pause = inner.cfg.scrub_interval.min(FIRST_SCRUB_DELAY);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = stop.changed() => return,
        }
        pause = inner.cfg.scrub_interval;
        let catalog = inner.catalog.clone();
        let wanted = match tokio::task::spawn_blocking(move || referenced(&catalog)).await {
            Ok(Ok(w)) => w,
            _ => continue,
        };
        let (mut checked, mut bytes, mut corrupt) = (0u64, 0u64, 0u64);
        for (sha, size) in wanted {
            if *stop.borrow() {
                return;
            }
            throttle.take(size).await;
            let blobs = inner.blobs.clone();
            match tokio::task::spawn_blocking(move || blobs.verify(&sha)).await {
                Ok(Ok(true)) => {
                    checked += 1;
                    bytes += size;
                }
                Ok(Ok(false)) => {}
                Ok(Err(store::Error::Corrupt { .. })) => {
                    corrupt += 1;
                    inner.corrupt(sha);
                }
                Ok(Err(e)) => tracing::warn!(blob = %sha, error = %e, "scrub could not read a blob"),
                Err(e) => tracing::warn!(error = %e, "scrub task failed"),
            }
        }
        tracing::info!(checked, bytes, corrupt, "scrub pass done");
    }
}
