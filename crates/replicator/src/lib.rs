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

mod config;
mod pull;
mod queue;
mod service;
mod throttle;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use proto::{BlobsClient, BlobsServer, ReportRequest};
use raft::{ClusterAuth, Command, ControlPlane, ProposeError, StateEvent};
use serde_json::json;
use store::{Catalog, DbOp, Sha256, Store, CF_LOCAL};
use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;
use upstream::Group;

pub use config::{parse_bytes, ReplicationConfig};
pub use queue::{Entry as QueueEntry, QueueStats};
pub use service::CHUNK;

use queue::Queue;
use throttle::Throttle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RETRY_BASE: Duration = Duration::from_millis(250);
/// `CF_LOCAL` keys marking a blob no catalog entry referenced, with when
/// that was first seen (`gc\0<sha256 hex>` → u64 ms, big endian).
const GC_PREFIX: &[u8] = b"gc\0";
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
            workers = inner.cfg.workers, min_copies = inner.cfg.min_copies, bandwidth_limit = inner.cfg.bandwidth_limit,
            queued = queued.blobs, queued_bytes = queued.bytes, "blob replicator started"
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
        if self.blobs.exists(&sha) {
            let listed = match placement {
                Some(nodes) => nodes.contains(&self.me),
                None => self.control.placement(&sha.to_hex()).contains(&self.me),
            };
            if listed {
                return Want::Held;
            }
            let _ = self.reports.send(Placed::Stored(sha));
            return Want::Reported;
        }
        // Placement still names this node (its data directory was lost):
        // correct it, so lag and sources are right until the copy is back.
        let listed = match placement {
            Some(nodes) => nodes.contains(&self.me),
            None => self.control.placement(&sha.to_hex()).contains(&self.me),
        };
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

/// Sends this node's new copies to the primary in batches, until they commit.
/// What the primary is told about this node's copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Placed {
    Stored(Sha256),
    Lost(Sha256),
}

async fn report_placement(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Placed>, mut stop: watch::Receiver<bool>) {
    let mut pending: Vec<Placed> = Vec::new();
    let mut failures = 0u32;
    loop {
        if pending.is_empty() {
            tokio::select! {
                placed = rx.recv() => match placed {
                    Some(placed) => pending.push(placed),
                    None => return,
                },
                _ = stop.changed() => return,
            }
            // Let a burst of copies share one raft entry.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while let Ok(placed) = rx.try_recv() {
            pending.push(placed);
        }
        // What is still true and not yet recorded, once each.
        let mut seen = HashSet::new();
        pending.retain(|placed| {
            let (sha, held) = match placed {
                Placed::Stored(sha) => (sha, true),
                Placed::Lost(sha) => (sha, false),
            };
            let listed = inner.control.placement(&sha.to_hex()).contains(&inner.me);
            seen.insert(*placed) && inner.blobs.exists(sha) == held && listed != held
        });
        if pending.is_empty() {
            continue;
        }
        match send_report(&inner, &pending).await {
            Ok(()) => {
                tracing::debug!(reports = pending.len(), "placement reported");
                pending.clear();
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures, Duration::from_secs(5));
                tracing::warn!(reports = pending.len(), error = %e, retry_in_ms = wait.as_millis() as u64, "could not report blob placement; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn send_report(inner: &Inner, placed: &[Placed]) -> Result<(), String> {
    let (mut stored, mut lost) = (Vec::new(), Vec::new());
    for p in placed {
        match p {
            Placed::Stored(sha) => stored.push(sha.to_hex()),
            Placed::Lost(sha) => lost.push(sha.to_hex()),
        }
    }
    let control = &inner.control;
    if control.is_acting_primary() {
        return propose_placement(control, inner.me, lost, stored).await.map(|_| ()).map_err(|e| e.to_string());
    }
    let leader = match control.leader() {
        Some(l) => l,
        None => control.wait_for_leader(Duration::from_secs(5)).await.ok_or("no primary")?,
    };
    if leader == inner.me {
        return Err("this node is leader but not yet acting as primary".into());
    }
    let mut request = Request::new(ReportRequest { from: inner.me, sha256: stored, lost });
    inner.auth.stamp(&mut request);
    inner.client(leader)?.report(request).await.map(|_| ()).map_err(|s| format!("primary (node {leader}): {}", s.message()))
}

/// Records placement changes of `node` through raft: losses first, so a
/// copy lost and pulled again ends up listed. Returns the last log index.
pub(crate) async fn propose_placement(
    control: &ControlPlane,
    node: u64,
    lost: Vec<String>,
    stored: Vec<String>,
) -> Result<u64, ProposeError> {
    let mut index = 0;
    if !lost.is_empty() {
        index = control.propose(Command::BlobLost { node_id: node, blobs: lost }, Duration::from_secs(5)).await?;
    }
    if !stored.is_empty() {
        index = control.propose(Command::BlobStored { node_id: node, blobs: stored }, Duration::from_secs(5)).await?;
    }
    Ok(index)
}

async fn anti_entropy(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        let worker = inner.clone();
        match tokio::task::spawn_blocking(move || anti_entropy_pass(&worker)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "anti-entropy pass failed"),
            Err(e) => tracing::warn!(error = %e, "anti-entropy task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.anti_entropy_interval) => {},
            _ = inner.rescan.notified() => {},
            _ = stop.changed() => return,
        }
    }
}

pub(crate) fn referenced(catalog: &Catalog) -> Result<BTreeMap<Sha256, u64>, store::Error> {
    let mut out = BTreeMap::new();
    for (_, _, zip) in catalog.all_zips()? {
        if let Ok(sha) = zip.sha() {
            out.insert(sha, zip.size);
        }
    }
    Ok(out)
}

fn anti_entropy_pass(inner: &Inner) -> Result<(), store::Error> {
    let started = Instant::now();
    let wanted = referenced(&inner.catalog)?;
    let mut placement: HashMap<String, Vec<u64>> = HashMap::new();
    for (sha, node) in inner.control.placements() {
        placement.entry(sha).or_default().push(node);
    }
    let (mut queued, mut reported) = (0, 0);
    for (sha, size) in &wanted {
        let nodes = placement.get(&sha.to_hex()).map(Vec::as_slice).unwrap_or(&[]);
        match inner.want(*sha, *size, Some(nodes)) {
            Want::Queued => queued += 1,
            Want::Reported => reported += 1,
            Want::Held | Want::AlreadyQueued => {}
        }
    }
    // Queued blobs the catalog no longer references (purged meanwhile).
    let mut dropped = 0;
    for sha in inner.queue.shas() {
        if !wanted.contains_key(&sha) {
            inner.queue.remove(&sha);
            let _ = std::fs::remove_file(inner.blobs.partial_path(&sha));
            dropped += 1;
        }
    }
    let in_queue = |sha: &Sha256| inner.queue.contains(sha);
    let deleted = collect_garbage(&inner.catalog, &inner.blobs, &wanted, &in_queue, inner.cfg.purge_grace, now_ms())?;
    inner.stats.deleted.fetch_add(deleted as u64, Ordering::Relaxed);
    tracing::info!(
        referenced = wanted.len(), queued, reported, dropped, deleted, millis = started.elapsed().as_millis() as u64,
        "anti-entropy pass"
    );
    Ok(())
}

/// Deletes local blobs (and stray partial files) that no catalog entry has
/// referenced for `grace`, as seen by passes at least `grace` apart. A blob
/// is deleted only if a second read of the catalog, just before, still does
/// not reference it. Returns how many blobs were deleted.
pub(crate) fn collect_garbage(
    catalog: &Catalog,
    blobs: &store::BlobStore,
    wanted: &BTreeMap<Sha256, u64>,
    queued: &dyn Fn(&Sha256) -> bool,
    grace: Duration,
    now: u64,
) -> Result<usize, store::Error> {
    let db = catalog.db();
    let grace = grace.as_millis() as u64;
    let mut local: Vec<Sha256> = blobs.list()?;
    local.extend(blobs.partials()?.into_iter().filter(|sha| !queued(sha)));
    let mut marks: HashMap<Sha256, u64> = HashMap::new();
    for (key, value) in db.scan_prefix(CF_LOCAL, GC_PREFIX)? {
        let sha = std::str::from_utf8(&key[GC_PREFIX.len()..]).ok().and_then(|h| h.parse().ok());
        let since = value.as_slice().try_into().ok().map(u64::from_be_bytes);
        if let (Some(sha), Some(since)) = (sha, since) {
            marks.insert(sha, since);
        }
    }
    let mut ops = Vec::new();
    let mut expired = Vec::new();
    for sha in &local {
        if wanted.contains_key(sha) {
            continue;
        }
        match marks.get(sha) {
            None => ops.push(DbOp::Put { cf: CF_LOCAL, key: gc_key(sha), value: now.to_be_bytes().to_vec() }),
            Some(&since) if now.saturating_sub(since) >= grace => expired.push(*sha),
            Some(_) => {}
        }
    }
    let local_set: HashSet<Sha256> = local.iter().copied().collect();
    for sha in marks.keys() {
        if wanted.contains_key(sha) || !local_set.contains(sha) {
            ops.push(DbOp::Delete { cf: CF_LOCAL, key: gc_key(sha) });
        }
    }
    let mut deleted = 0;
    if !expired.is_empty() {
        let again = referenced(catalog)?;
        for sha in expired.iter().filter(|sha| !again.contains_key(sha)) {
            let _ = std::fs::remove_file(blobs.partial_path(sha));
            if blobs.delete(sha)? {
                tracing::info!(blob = %sha, grace_seconds = grace / 1000, "deleted a blob no catalog entry references");
                deleted += 1;
            }
            ops.push(DbOp::Delete { cf: CF_LOCAL, key: gc_key(sha) });
        }
    }
    if !ops.is_empty() {
        db.write(ops, false)?;
    }
    Ok(deleted)
}

fn gc_key(sha: &Sha256) -> Vec<u8> {
    [GC_PREFIX, sha.to_hex().as_bytes()].concat()
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
