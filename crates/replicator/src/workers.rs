//! Pull workers: take due blobs from the queue and pull them, retrying
//! failures with exponential backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use background::Worker;

use crate::inner::{now_ms, Inner};

const RETRY_BASE: Duration = Duration::from_millis(250);

/// One worker; `replication.workers` of them run.
pub(crate) async fn work(inner: Arc<Inner>, worker: Worker) {
    let mut stop = worker.stop_signal();
    loop {
        let (sha, entry) = tokio::select! {
            next = inner.queue.next(now_ms) => next,
            _ = stop.changed() => return,
        };
        worker.working(format!("pulling blob {sha} ({} bytes, attempt {})", entry.size, entry.attempts + 1));
        let result = tokio::select! {
            r = inner.pull_shared(sha, entry.size) => r,
            _ = stop.changed() => {
                inner.queue.release(&sha);
                return;
            }
        };
        match result {
            Ok(_) => {
                inner.stored(sha);
                worker.done();
            }
            Err(e) => {
                inner.stats.failures.fetch_add(1, Ordering::Relaxed);
                let backoff = backoff(entry.attempts, inner.cfg.retry_max);
                let attempts = inner.queue.failed(&sha, e.to_string(), backoff, now_ms());
                worker.error(format_args!("blob {sha}: {e}"));
                tracing::warn!(blob = %sha, attempts, retry_in_ms = backoff.as_millis() as u64, error = %e, "blob replication failed; will retry");
            }
        }
    }
}

/// 250 ms doubling with every attempt, at most `max`.
pub(crate) fn backoff(attempts: u32, max: Duration) -> Duration {
    RETRY_BASE.saturating_mul(1u32 << attempts.min(16)).min(max)
}
