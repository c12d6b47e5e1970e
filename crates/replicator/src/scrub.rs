//! Scrub: re-hashes every referenced local blob at a bounded rate; a
//! corrupt copy is quarantined by the store and fetched again.

use std::sync::Arc;
use std::time::Duration;

use background::Worker;

use crate::anti_entropy::referenced;
use crate::inner::Inner;
use crate::throttle::Throttle;

/// Wait before the first scrub pass after start-up.
const FIRST_SCRUB_DELAY: Duration = Duration::from_secs(600);

/// Re-hashes every referenced local blob, `scrub_rate` bytes per second,
/// one pass every `scrub_interval`.
pub(crate) async fn scrub(inner: Arc<Inner>, worker: Worker) {
    if inner.cfg.scrub_rate == 0 {
        return;
    }
    let mut stop = worker.stop_signal();
    let throttle = Throttle::new(inner.cfg.scrub_rate);
    let mut pause = inner.cfg.scrub_interval.min(FIRST_SCRUB_DELAY);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {},
            _ = stop.changed() => return,
        }
        pause = inner.cfg.scrub_interval;
        worker.working("reading the catalog");
        let catalog = inner.catalog.clone();
        let wanted = match tokio::task::spawn_blocking(move || referenced(&catalog)).await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                worker.error(format_args!("reading the catalog: {e}"));
                continue;
            }
            Err(e) => {
                worker.error(format_args!("reading the catalog: {e}"));
                continue;
            }
        };
        let (mut checked, mut bytes, mut corrupt) = (0u64, 0u64, 0u64);
        let total = wanted.len();
        for (n, (sha, size)) in wanted.into_iter().enumerate() {
            if worker.stopping() {
                return;
            }
            worker.working(format!("re-hashing blob {sha} ({} of {total})", n + 1));
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
                    worker.error(format_args!("blob {sha} was corrupt: quarantined and queued again"));
                    inner.corrupt(sha);
                }
                Ok(Err(e)) => {
                    worker.error(format_args!("blob {sha}: {e}"));
                    tracing::warn!(blob = %sha, error = %e, "scrub could not read a blob");
                }
                Err(e) => {
                    worker.error(format_args!("blob {sha}: {e}"));
                    tracing::warn!(error = %e, "scrub task failed");
                }
            }
        }
        worker.done();
        tracing::info!(checked, bytes, corrupt, "scrub pass done");
    }
}
