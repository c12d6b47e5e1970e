//! [`Replicator`]: the handle the node holds. Starts the tasks, serves the
//! `Blobs` service, and answers what the gateway asks of replication.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::BlobsServer;
use raft::ControlPlane;
use store::{Sha256, Store};
use tokio::sync::{mpsc, Notify};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use upstream::Group;

use crate::anti_entropy::anti_entropy;
use crate::events::follow_events;
use crate::inner::{now_ms, Inner, Stats};
use crate::lag::LagBook;
use crate::placement::report_placement;
use crate::queue::Queue;
use crate::scrub::scrub;
use crate::service::BlobService;
use crate::throttle::Throttle;
use crate::workers::work;
use crate::{Error, ReplicationConfig, Result};
use api::{BlobStatus, QueueStatus, QueuedBlob, ReplicationStatus};

/// The replicator of one node. Cheap to clone.
#[derive(Clone)]
pub struct Replicator {
    inner: Arc<Inner>,
}

impl Replicator {
    /// Starts the replicator's tasks on this node as named background
    /// workers: `event-follower`, `placement-reporter`, `anti-entropy`,
    /// `scrub` and `replication-worker-1`…`N`.
    pub fn start(cfg: ReplicationConfig, store: &Store, control: ControlPlane, workers: &background::Workers) -> Result<Replicator> {
        cfg.validate(control.members().len())?;
        let queue = Queue::open(store.catalog.db().clone()).map_err(|e| Error::store("opening the replication queue", e))?;
        let (reports, report_rx) = mpsc::unbounded_channel();
        // Subscribe before the first anti-entropy pass, so no entry applied
        // in between is missed.
        let events = control.subscribe();
        let lags = LagBook::new(store.catalog.clone(), control.clone());
        let inner = Arc::new(Inner {
            me: control.node_id(),
            throttle: Throttle::new(cfg.bandwidth_limit),
            blobs: store.blobs.clone(),
            catalog: store.catalog.clone(),
            auth: control.auth(),
            control,
            queue,
            stats: Stats::default(),
            pulls: Group::new(),
            clients: Mutex::new(HashMap::new()),
            reports,
            rescan: Notify::new(),
            lags,
            cfg,
        });
        inner.lags.recount();
        let queued = inner.queue.stats();
        tracing::info!(
            workers = inner.cfg.workers,
            min_copies = inner.cfg.min_copies,
            bandwidth_limit = inner.cfg.bandwidth_limit,
            queued = queued.blobs,
            queued_bytes = queued.bytes,
            "blob replicator started"
        );
        let i = inner.clone();
        workers.spawn("event-follower", move |w| follow_events(i, events, w));
        let i = inner.clone();
        workers.spawn("placement-reporter", move |w| report_placement(i, report_rx, w));
        let i = inner.clone();
        workers.spawn("anti-entropy", move |w| anti_entropy(i, w));
        let i = inner.clone();
        workers.spawn("scrub", move |w| scrub(i, w));
        for n in 1..=inner.cfg.workers {
            let i = inner.clone();
            workers.spawn(format!("replication-worker-{n}"), move |w| work(i, w));
        }
        Ok(Replicator { inner })
    }

    /// The `flotilla.v1.Blobs` gRPC service, to mount on the cluster port.
    /// Callers are authenticated on their headers and certificate before a
    /// request is read; requests are small (a report names at most 10,000
    /// blobs), so tonic's 4 MiB limit stays.
    pub fn service(&self) -> InterceptedService<BlobsServer<BlobService>, impl Interceptor + Clone> {
        let auth = self.inner.auth.clone();
        InterceptedService::new(BlobsServer::new(BlobService { inner: self.inner.clone() }), move |request| {
            auth.intercept(request, "Blobs")
        })
    }

    /// Copies blob `sha` from a peer now (a client asked for a zip this node
    /// does not hold yet), sharing a transfer already under way.
    pub async fn fetch_now(&self, sha: Sha256, size: u64) -> Result<()> {
        if self.inner.blobs.exists(&sha) {
            return Ok(());
        }
        self.inner.queue.push(sha, size, now_ms());
        let result = self.inner.pull_shared(sha, size).await;
        if result.is_ok() {
            self.inner.stored(sha);
        }
        result.map(|_| ())
    }

    /// A stored copy of `sha` was found corrupt (and quarantined): get it back.
    pub fn corrupt(&self, sha: Sha256) {
        self.inner.corrupt(sha);
    }

    /// Waits until at least `copies` nodes hold `sha` according to placement.
    /// `Err(n)`: only `n` did within `timeout`.
    pub async fn wait_copies(&self, sha: &Sha256, copies: usize, timeout: Duration) -> Result<(), usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut status = self.inner.control.watch();
        loop {
            let held = self.inner.control.placement(sha).len();
            if held >= copies {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(held);
            }
            tokio::select! {
                _ = status.changed() => {},
                _ = tokio::time::sleep(Duration::from_millis(10)) => {},
                _ = tokio::time::sleep_until(deadline) => {},
            }
        }
    }

    pub fn min_copies(&self) -> usize {
        self.inner.cfg.min_copies
    }

    pub fn min_copies_timeout(&self) -> Duration {
        self.inner.cfg.min_copies_timeout
    }

    /// What this node knows about one blob, for `/api/v1/blobs/{sha256}`.
    pub fn blob(&self, sha: &Sha256) -> BlobStatus {
        let inner = &self.inner;
        let size = std::fs::metadata(inner.blobs.path_of(sha)).ok().map(|m| m.len());
        let queued = inner.queue.get(sha).map(|e| {
            let done = std::fs::metadata(inner.blobs.partial_path(sha)).map(|m| m.len()).unwrap_or(0);
            QueuedBlob { attempts: e.attempts, last_error: e.last_error, bytes_done: done, size: e.size }
        });
        BlobStatus { sha256: sha.to_hex(), local: size.is_some(), size, nodes: inner.control.placement(sha), queued }
    }

    /// Re-hashes every referenced local blob now and repairs each corrupt
    /// copy from a peer before answering (`flotillactl verify`).
    pub async fn verify(&self) -> Result<crate::VerifyReport> {
        crate::verify::verify(&self.inner).await
    }

    /// Queued blobs whose last pull failed (oldest first, at most `limit`),
    /// with their last error, for `flotillactl replication`.
    pub fn failing(&self, limit: usize) -> Vec<(Sha256, crate::QueueEntry)> {
        self.inner.queue.failing(limit)
    }

    /// Replication facts for `/api/v1/status` (`cluster.replication`).
    pub fn status(&self) -> ReplicationStatus {
        let inner = &self.inner;
        let q = inner.queue.stats();
        let oldest = q.oldest_ms.map(|t| now_ms().saturating_sub(t) as f64 / 1000.0).unwrap_or(0.0);
        let s = &inner.stats;
        ReplicationStatus {
            queue: QueueStatus { blobs: q.blobs, bytes: q.bytes, oldest_seconds: oldest, failing: q.failing },
            received_bytes: s.received.load(Ordering::Relaxed),
            sent_bytes: s.sent.load(Ordering::Relaxed),
            resumed: s.resumed.load(Ordering::Relaxed),
            replicated_blobs: s.replicated.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            corrupt_found: s.corrupt.load(Ordering::Relaxed),
            deleted_blobs: s.deleted.load(Ordering::Relaxed),
            in_flight: inner.pulls.in_flight(),
            nodes: inner.lags.lag(),
        }
    }
}
