//! The blob replicator: module zips are not in the raft log, yet every node
//! must hold every zip the catalog references, verified.
//!
//! - When a node applies a catalog entry naming a blob it lacks, the blob
//!   goes into a RocksDB-backed [`queue`]; workers pull it from a peer that
//!   has it ([`pull`]: resumable, throttled, sha256-checked before it becomes
//!   visible) and report the copy to the primary, which records it through
//!   raft (`BlobStored`): every node knows where every blob lives.
//! - Anti-entropy (at startup, after a snapshot, periodically) compares the
//!   catalog with the local blobs; it queues what is missing, re-reports what
//!   placement lacks, and deletes blobs no entry references after a grace
//!   period. Scrub re-hashes stored blobs at a bounded rate; a corrupt one is
//!   quarantined by the store and queued again.
//! - [`service`] is the `flotilla.v1.Blobs` gRPC service on the cluster port.

mod anti_entropy;
mod config;
mod placement;
mod pull;
mod queue;
mod service;
mod throttle;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use proto::{BlobsClient, BlobsServer};
use raft::{ClusterAuth, ControlPlane, StateEvent};
use serde_json::json;
use store::{Catalog, Sha256, Store};
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use upstream::Group;

pub use config::{parse_bytes, ReplicationConfig};
pub use queue::{Entry as QueueEntry, QueueStats};
pub use service::CHUNK;

#[cfg(test)]
use anti_entropy::collect_garbage;
use anti_entropy::{anti_entropy, referenced};
use placement::{report_placement, Placed};
use queue::Queue;
use throttle::Throttle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY_BASE: Duration = Duration::from_millis(250);
/// How long a computed per-node lag table is reused.
const LAG_CACHE: Duration = Duration::from_secs(1);
/// Blobs whose apply time is remembered for the lag ages.
const FIRST_SEEN_CAP: usize = 100_000;
/// Wait before the first scrub pass after start-up.
const FIRST_SCRUB_DELAY: Duration = Duration::from_secs(600);

/// The replicator of one node. Cheap to clone.
#[derive(Clone)]
pub struct Replicator {
    inner: Arc<Inner>,
}

/// Counters since this process started.
#[derive(Default)]
pub(crate) struct Stats {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub resumed: AtomicU64,
    pub replicated: AtomicU64,
    pub failures: AtomicU64,
    pub corrupt: AtomicU64,
    pub deleted: AtomicU64,
}

pub(crate) struct Inner {
    pub me: u64,
    cfg: ReplicationConfig,
    pub blobs: store::BlobStore,
    catalog: Catalog,
    pub control: ControlPlane,
    pub auth: Arc<ClusterAuth>,
    queue: Queue,
    pub throttle: Throttle,
    pub stats: Stats,
    pulls: Group<Sha256, Result<u64, String>>,
    clients: Mutex<HashMap<u64, BlobsClient<Channel>>>,
    reports: mpsc::UnboundedSender<Placed>,
    rescan: Notify,
    lag: Mutex<Option<(Instant, serde_json::Value)>>,
    /// When this node first saw each blob that some member still lacks (ms
    /// since the epoch): from the applied entry when it saw that, else from
    /// the first lag computation that found it missing.
    first_seen: Mutex<HashMap<String, u64>>,
}

impl Replicator {
    /// Starts the replicator's tasks on this node; they end when `stop`
    /// turns true.
    pub fn start(
        cfg: ReplicationConfig,
        store: &Store,
        control: ControlPlane,
        stop: watch::Receiver<bool>,
    ) -> Result<(Replicator, Vec<JoinHandle<()>>), String> {
        cfg.validate(control.members().len())?;
        let queue = Queue::open(store.catalog.db().clone()).map_err(|e| format!("opening the replication queue: {e}"))?;
        let (reports, report_rx) = mpsc::unbounded_channel();
        // Subscribe before the first anti-entropy pass, so no entry applied
        // in between is missed.
        let events = control.subscribe();
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
            lag: Mutex::new(None),
            first_seen: Mutex::new(HashMap::new()),
            cfg,
        });
        let queued = inner.queue.stats();
        tracing::info!(
            workers = inner.cfg.workers,
            min_copies = inner.cfg.min_copies,
            bandwidth_limit = inner.cfg.bandwidth_limit,
            queued = queued.blobs,
            queued_bytes = queued.bytes,
            "blob replicator started"
        );
        let mut tasks = vec![
            tokio::spawn(follow_events(inner.clone(), events, stop.clone())),
            tokio::spawn(report_placement(inner.clone(), report_rx, stop.clone())),
            tokio::spawn(anti_entropy(inner.clone(), stop.clone())),
            tokio::spawn(scrub(inner.clone(), stop.clone())),
        ];
        for _ in 0..inner.cfg.workers {
            tasks.push(tokio::spawn(work(inner.clone(), stop.clone())));
        }
        Ok((Replicator { inner }, tasks))
    }

    /// The `flotilla.v1.Blobs` gRPC service, to mount on the cluster port.
    pub fn service(&self) -> BlobsServer<service::BlobService> {
        BlobsServer::new(service::BlobService { inner: self.inner.clone() })
    }

    /// Copies blob `sha` from a peer now (a client asked for a zip this node
    /// does not hold yet), sharing a transfer already under way.
    pub async fn fetch_now(&self, sha: Sha256, size: u64) -> Result<(), String> {
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
        let hex = sha.to_hex();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut status = self.inner.control.watch();
        loop {
            let held = self.inner.control.placement(&hex).len();
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
    pub fn blob(&self, sha: &Sha256) -> serde_json::Value {
        let inner = &self.inner;
        let path = inner.blobs.path_of(sha);
        let size = std::fs::metadata(&path).ok().map(|m| m.len());
        let queued = inner.queue.get(sha).map(|e| {
            let done = std::fs::metadata(inner.blobs.partial_path(sha)).map(|m| m.len()).unwrap_or(0);
            json!({ "attempts": e.attempts, "last_error": e.last_error, "bytes_done": done, "size": e.size })
        });
        json!({
            "sha256": sha.to_hex(),
            "local": size.is_some(),
            "size": size,
            "nodes": inner.control.placement(&sha.to_hex()),
            "queued": queued,
        })
    }

    /// Replication facts for `/api/v1/status` (`cluster.replication`).
    pub fn status(&self) -> serde_json::Value {
        let inner = &self.inner;
        let q = inner.queue.stats();
        let oldest = q.oldest_ms.map(|t| now_ms().saturating_sub(t) as f64 / 1000.0).unwrap_or(0.0);
        let s = &inner.stats;
        json!({
            "queue": { "blobs": q.blobs, "bytes": q.bytes, "oldest_seconds": oldest, "failing": q.failing },
            "received_bytes": s.received.load(Ordering::Relaxed),
            "sent_bytes": s.sent.load(Ordering::Relaxed),
            "resumed": s.resumed.load(Ordering::Relaxed),
            "replicated_blobs": s.replicated.load(Ordering::Relaxed),
            "failures": s.failures.load(Ordering::Relaxed),
            "corrupt_found": s.corrupt.load(Ordering::Relaxed),
            "deleted_blobs": s.deleted.load(Ordering::Relaxed),
            "in_flight": inner.pulls.in_flight(),
            "nodes": inner.lag(),
        })
    }
}

impl Inner {
    async fn pull_shared(self: &Arc<Self>, sha: Sha256, size: u64) -> Result<u64, String> {
        let inner = self.clone();
        self.pulls
            .run(sha, move || async move {
                if inner.blobs.exists(&sha) {
                    return Ok(0);
                }
                let started = Instant::now();
                let pulled = pull::pull(&inner, sha, size).await?;
                tracing::info!(
                    blob = %sha, bytes = pulled.bytes, from = pulled.from, millis = started.elapsed().as_millis() as u64,
                    "blob replicated"
                );
                inner.stats.replicated.fetch_add(1, Ordering::Relaxed);
                Ok(pulled.bytes)
            })
            .await
    }

    /// Peers to ask for `sha`: those placement names (starting at a
    /// different one on each node, to spread the load), then the primary,
    /// then everyone else.
    pub(crate) fn sources(&self, sha: &Sha256) -> Vec<u64> {
        let mut holders: Vec<u64> = self.control.placement(&sha.to_hex()).into_iter().filter(|&n| n != self.me).collect();
        if !holders.is_empty() {
            let turn = (self.me as usize) % holders.len();
            holders.rotate_left(turn);
        }
        if let Some(leader) = self.control.leader() {
            holders.push(leader);
        }
        holders.extend(self.control.members());
        let mut seen = HashSet::new();
        holders.retain(|&n| n != self.me && seen.insert(n));
        holders
    }

    pub(crate) fn client(&self, peer: u64) -> Result<BlobsClient<Channel>, String> {
        if let Some(client) = self.clients.lock().get(&peer) {
            return Ok(client.clone());
        }
        let addr = self.control.peer_addr(peer).ok_or_else(|| format!("node {peer} is not in cluster.peers"))?;
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| format!("bad address {addr:?}: {e}"))?;
        let channel = endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true).connect_lazy();
        let client = BlobsClient::new(channel);
        self.clients.lock().insert(peer, client.clone());
        Ok(client)
    }

    /// This node now holds `sha`: forget it in the queue, tell the primary.
    fn stored(&self, sha: Sha256) {
        self.queue.done(&sha);
        let _ = self.reports.send(Placed::Stored(sha));
    }

    fn corrupt(self: &Arc<Self>, sha: Sha256) {
        self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
        let inner = self.clone();
        tokio::spawn(async move {
            let catalog = inner.catalog.clone();
            let zips = tokio::task::spawn_blocking(move || catalog.all_zips()).await;
            let size = match zips {
                Ok(Ok(zips)) => zips.into_iter().find(|(_, _, z)| z.sha256 == sha.to_hex()).map(|(_, _, z)| z.size),
                _ => None,
            };
            match size {
                Some(size) => {
                    tracing::warn!(blob = %sha, "corrupt blob queued to be fetched again from a peer");
                    inner.queue.push(sha, size, now_ms());
                    let _ = inner.reports.send(Placed::Lost(sha));
                }
                None => tracing::warn!(blob = %sha, "corrupt blob is not referenced by the catalog; not fetched again"),
            }
        });
    }

    /// A zip the catalog references: report it if held, else queue it.
    fn want(&self, sha: Sha256, size: u64, placement: Option<&[u64]>) -> Want {
        let listed = match placement {
            Some(nodes) => nodes.contains(&self.me),
            None => self.control.placement(&sha.to_hex()).contains(&self.me),
        };
        if self.blobs.exists(&sha) {
            if listed {
                return Want::Held;
            }
            let _ = self.reports.send(Placed::Stored(sha));
            return Want::Reported;
        }
        // Placement still names this node (its data directory was lost):
        // correct it, so lag and sources are right until the copy is back.
        if listed {
            let _ = self.reports.send(Placed::Lost(sha));
        }
        if self.queue.push(sha, size, now_ms()) {
            Want::Queued
        } else {
            Want::AlreadyQueued
        }
    }

    /// Notes when a zip entry was applied here, for the per-member age of
    /// the oldest missing blob (bounded: past the cap, the lag computation
    /// records what it finds missing instead).
    fn seen(&self, sha: &str) {
        let mut first = self.first_seen.lock();
        if first.len() < FIRST_SEEN_CAP {
            first.entry(sha.to_owned()).or_insert_with(now_ms);
        }
    }

    /// Missing blobs and bytes per member, and the age of the oldest one,
    /// from the catalog and placement.
    fn lag(&self) -> serde_json::Value {
        if let Some((at, value)) = &*self.lag.lock() {
            if at.elapsed() < LAG_CACHE {
                return value.clone();
            }
        }
        let zips: BTreeMap<String, u64> = match self.catalog.all_zips() {
            Ok(zips) => zips.into_iter().map(|(_, _, z)| (z.sha256, z.size)).collect(),
            Err(e) => return json!({ "error": e.to_string() }),
        };
        let mut held: HashMap<u64, HashSet<String>> = HashMap::new();
        for (sha, node) in self.control.placements() {
            held.entry(node).or_default().insert(sha);
        }
        let now = now_ms();
        let mut first_seen = self.first_seen.lock();
        let mut still_missing = HashSet::new();
        let mut out = serde_json::Map::new();
        for node in self.control.members() {
            let theirs = held.get(&node);
            let (mut blobs, mut bytes, mut oldest) = (0u64, 0u64, now);
            for (sha, size) in &zips {
                if !theirs.is_some_and(|h| h.contains(sha)) {
                    blobs += 1;
                    bytes += size;
                    let since = *first_seen.entry(sha.clone()).or_insert(now);
                    oldest = oldest.min(since);
                    still_missing.insert(sha.as_str());
                }
            }
            let age = now.saturating_sub(oldest) as f64 / 1000.0;
            out.insert(node.to_string(), json!({ "missing_blobs": blobs, "missing_bytes": bytes, "oldest_missing_seconds": age }));
        }
        first_seen.retain(|sha, _| still_missing.contains(sha.as_str()));
        let value = serde_json::Value::Object(out);
        *self.lag.lock() = Some((Instant::now(), value.clone()));
        value
    }
}

enum Want {
    Held,
    Reported,
    Queued,
    AlreadyQueued,
}

async fn follow_events(inner: Arc<Inner>, mut events: broadcast::Receiver<StateEvent>, mut stop: watch::Receiver<bool>) {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.changed() => return,
        };
        match event {
            Ok(StateEvent::Zip { sha256, size }) => match sha256.parse::<Sha256>() {
                Ok(sha) => {
                    inner.seen(&sha256);
                    inner.want(sha, size, None);
                }
                Err(_) => tracing::warn!(blob = %sha256, "catalog names a malformed blob sha256; ignored"),
            },
            // A node catching up applies its own placement from before it
            // lost its data: correct what it no longer holds.
            Ok(StateEvent::Stored { sha256, node_id }) if node_id == inner.me => {
                if let Ok(sha) = sha256.parse::<Sha256>() {
                    if !inner.blobs.exists(&sha) {
                        let _ = inner.reports.send(Placed::Lost(sha));
                    }
                }
            }
            Ok(StateEvent::Stored { .. }) => {}
            Ok(StateEvent::Reset) => {
                tracing::info!("catalog replaced by a snapshot; comparing it with the local blobs");
                inner.rescan.notify_one();
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::info!(missed, "replicator fell behind the applied log; rescanning the catalog");
                inner.rescan.notify_one();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Workers: pull queued blobs, retrying failures with exponential backoff.
async fn work(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let (sha, entry) = tokio::select! {
            next = inner.queue.next(now_ms) => next,
            _ = stop.changed() => return,
        };
        let result = tokio::select! {
            r = inner.pull_shared(sha, entry.size) => r,
            _ = stop.changed() => {
                inner.queue.release(&sha);
                return;
            }
        };
        match result {
            Ok(_) => inner.stored(sha),
            Err(e) => {
                inner.stats.failures.fetch_add(1, Ordering::Relaxed);
                let backoff = backoff(entry.attempts, inner.cfg.retry_max);
                let attempts = inner.queue.failed(&sha, e.clone(), backoff, now_ms());
                tracing::warn!(blob = %sha, attempts, retry_in_ms = backoff.as_millis() as u64, error = %e, "blob replication failed; will retry");
            }
        }
    }
}

fn backoff(attempts: u32, max: Duration) -> Duration {
    RETRY_BASE.saturating_mul(1u32 << attempts.min(16)).min(max)
}

/// Re-hashes every referenced local blob, `scrub_rate` bytes per second,
/// one pass every `scrub_interval`.
async fn scrub(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
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

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod gc_tests;
