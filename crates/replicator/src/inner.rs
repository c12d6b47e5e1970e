//! The state every task of one node's replicator shares, and the steps
//! they have in common: pulling a blob once however many ask, choosing
//! peers, and recording what this node holds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use proto::BlobsClient;
use raft::{ClusterAuth, ControlPlane};
use store::{Catalog, Sha256};
use tokio::sync::{mpsc, Notify};
use tonic::transport::Channel;
use upstream::Group;

use crate::lag::LagBook;
use crate::placement::Placed;
use crate::queue::Queue;
use crate::throttle::Throttle;
use crate::{pull, Error, ReplicationConfig, Result};

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
    pub cfg: ReplicationConfig,
    pub blobs: store::BlobStore,
    pub catalog: Catalog,
    pub control: ControlPlane,
    pub auth: Arc<ClusterAuth>,
    pub queue: Queue,
    pub throttle: Throttle,
    pub stats: Stats,
    pub pulls: Group<Sha256, Result<u64>>,
    pub clients: Mutex<HashMap<u64, BlobsClient<Channel>>>,
    pub reports: mpsc::UnboundedSender<Placed>,
    /// Wakes anti-entropy for a full pass now.
    pub rescan: Notify,
    /// Per-member lag, kept from the applied log.
    pub lags: Arc<LagBook>,
}

/// What [`Inner::want`] did about a referenced blob.
pub(crate) enum Want {
    Held,
    Reported,
    Queued,
    AlreadyQueued,
}

impl Inner {
    /// Pulls `sha` from a peer, sharing a pull of the same blob already
    /// under way; the number of bytes copied (0: it was already here).
    pub(crate) async fn pull_shared(self: &Arc<Self>, sha: Sha256, size: u64) -> Result<u64> {
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
        let mut holders: Vec<u64> = self.control.placement(sha).into_iter().filter(|&n| n != self.me).collect();
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

    /// The `Blobs` client of `peer`, connected lazily and kept.
    pub(crate) fn client(&self, peer: u64) -> Result<BlobsClient<Channel>> {
        if let Some(client) = self.clients.lock().get(&peer) {
            return Ok(client.clone());
        }
        let addr = self.control.peer_addr(peer).ok_or(Error::UnknownPeer(peer))?;
        let endpoint = self.auth.endpoint(peer, &addr).map_err(|e| Error::BadAddress { addr: addr.clone(), reason: e.to_string() })?;
        let channel = endpoint.connect_lazy();
        let client = BlobsClient::new(channel);
        self.clients.lock().insert(peer, client.clone());
        Ok(client)
    }

    /// This node now holds `sha`: forget it in the queue, tell the primary.
    pub(crate) fn stored(&self, sha: Sha256) {
        self.queue.done(&sha);
        let _ = self.reports.send(Placed::Stored(sha));
    }

    /// The local copy of `sha` was found corrupt (and quarantined): queue it
    /// again if the catalog still references it, and tell the primary.
    pub(crate) fn corrupt(self: &Arc<Self>, sha: Sha256) {
        self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
        let inner = self.clone();
        tokio::spawn(async move {
            let catalog = inner.catalog.clone();
            let found = tokio::task::spawn_blocking(move || {
                let mut size = None;
                catalog
                    .for_each_zip(|z| {
                        if z.sha256 == sha {
                            size = Some(z.size);
                        }
                        size.is_none()
                    })
                    .map(|()| size)
            })
            .await;
            let size = match found {
                Ok(Ok(size)) => size,
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
    pub(crate) fn want(&self, sha: Sha256, size: u64, placement: Option<&[u64]>) -> Want {
        let listed = match placement {
            Some(nodes) => nodes.contains(&self.me),
            None => self.control.placement(&sha).contains(&self.me),
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
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
