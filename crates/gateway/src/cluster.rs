//! How the gateway sees the rest of the mirror: who may write, and how a
//! write becomes durable. A standalone node writes its own catalog; a
//! clustered node (crate `raft`) commits through the replicated log and
//! sends misses to the primary.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use store::{AuditRecord, CatalogOp, Sha256, Store, ZipRef};

use crate::ApiError;

/// Where this node stands for the purpose of answering a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Single node: it is its own primary.
    Standalone,
    /// The cluster's primary: it fetches from upstream and commits.
    Primary,
    /// Another node is primary; `url` is its advertised gateway URL when known.
    Follower { primary: u64, url: Option<String> },
    /// No primary right now (an election, or this node is cut off).
    NoPrimary,
}

pub trait Cluster: Send + Sync + 'static {
    fn role(&self) -> Role;

    /// Makes `op` durable: on a cluster, committed by a majority and applied
    /// locally before this resolves. Parts of a version the catalog already
    /// records stay as they are (first writer wins): read them back.
    fn commit(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), ApiError>>;

    /// Records `record` (a security event) in the audit log: through raft
    /// on a cluster, in the node's own catalog on a single node.
    fn audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), ApiError>>;

    /// Waits up to `timeout` for a primary to exist, then returns the role.
    fn wait_for_primary(&self, timeout: Duration) -> BoxFuture<'_, Role>;

    /// Whether a follower's primary has gone silent in raft (killed, frozen,
    /// cut off), so clients must not be sent there.
    fn primary_silent(&self) -> bool {
        false
    }

    /// `Ok` when this node can serve: it knows a primary and has applied the
    /// committed log. `Err` says why not.
    fn ready(&self) -> Result<(), String>;

    /// Cluster facts for `/api/v1/status`.
    fn status(&self) -> serde_json::Value;

    /// Copies the blob of `zip`, which the catalog has but this node lacks
    /// (replication lag, or a corrupt copy), from a peer that holds it.
    fn fetch_blob(&self, zip: &ZipRef) -> BoxFuture<'_, Result<(), String>> {
        let _ = zip;
        Box::pin(async { Err("a single node has no peer to copy from".to_string()) })
    }

    /// A stored blob was found corrupt and quarantined.
    fn blob_corrupt(&self, sha: Sha256) {
        let _ = sha;
    }

    /// Where a blob lives, for `/api/v1/blobs/{sha256}`; `None` on a single node.
    fn blob(&self, sha: &Sha256) -> Option<serde_json::Value> {
        let _ = sha;
        None
    }
}

/// A single node that is its own primary.
pub struct Standalone {
    store: Arc<Store>,
}

impl Standalone {
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        Arc::new(Standalone { store })
    }
}

impl Cluster for Standalone {
    fn role(&self) -> Role {
        Role::Standalone
    }

    fn commit(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.store.catalog.apply(&op)?;
            Ok(())
        })
    }

    fn audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            store::append_audit(self.store.catalog.db(), &record)?;
            Ok(())
        })
    }

    fn wait_for_primary(&self, _timeout: Duration) -> BoxFuture<'_, Role> {
        Box::pin(async { Role::Standalone })
    }

    fn ready(&self) -> Result<(), String> {
        self.store.catalog.db().get(store::CF_LOCAL, b"readyz-probe").map(|_| ()).map_err(|e| format!("store unavailable: {e}"))
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({ "role": "standalone" })
    }
}
