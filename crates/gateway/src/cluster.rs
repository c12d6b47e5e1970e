//! How the gateway sees the rest of the mirror: who may write, and how a
//! write becomes durable. A standalone node writes its own catalog; a
//! clustered node (crate `raft`) commits through the replicated log and
//! sends misses to the primary.

use std::sync::Arc;
use std::time::Duration;

use api::{BlobStatus, ClusterStatus};
use futures::future::BoxFuture;
use store::{AuditRecord, CatalogOp, Sha256, Store, ZipRef};

use crate::ApiError;

/// Why the cluster could not do what the gateway asked. The gateway turns
/// these into HTTP answers (`From<ClusterError> for ApiError`); the cluster
/// side never speaks HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// This node lost the primary role before the write committed.
    #[error("this node stopped being the primary before the write committed (primary now: {}); retry", node_name(*leader))]
    NotPrimary { leader: Option<u64> },
    /// No majority committed the write in time.
    #[error("the catalog write did not commit within {after:?}: no majority reachable; retry")]
    Timeout { after: Duration },
    /// The zip committed, but fewer nodes than `replication.min_copies`
    /// confirmed a copy within `waited`.
    #[error(
        "the zip is stored on {held} node(s) but replication.min_copies is {want} and no more copies \
         were confirmed within {waited:?}; it will keep replicating; retry"
    )]
    TooFewCopies { held: usize, want: usize, waited: Duration },
    /// The write is larger than one raft entry may be (`limit`, the raft
    /// crate's `MAX_COMMAND_BYTES`): it was not proposed. The gateway
    /// answers with what it fetched without caching it (`fill::commit_or_relay`).
    #[error("the catalog write would be a {bytes}-byte raft entry, larger than the {limit} bytes one may be")]
    TooLarge { bytes: usize, limit: usize },
    /// The cluster cannot do it now; the text says why.
    #[error("{0}")]
    Unavailable(String),
    /// Consensus itself failed (the raft core stopped).
    #[error("raft failed: {0}")]
    Fatal(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

fn node_name(id: Option<u64>) -> String {
    id.map_or("unknown".into(), |id| format!("node {id}"))
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::NotPrimary { .. } => ApiError::unavailable(e.to_string(), 1),
            ClusterError::Timeout { .. } | ClusterError::TooFewCopies { .. } => ApiError::unavailable(e.to_string(), 2),
            ClusterError::Unavailable(_) => ApiError::unavailable(e.to_string(), 1),
            ClusterError::Fatal(_) => ApiError::internal(e.to_string()),
            ClusterError::TooLarge { .. } => ApiError::bad_gateway(e.to_string()),
            ClusterError::Store(e) => e.into(),
        }
    }
}

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
    fn commit(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// Records `record` (a security event) in the audit log: through raft
    /// on a cluster, in the node's own catalog on a single node.
    fn audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), ClusterError>>;

    /// Waits up to `timeout` for a primary to exist, then returns the role.
    fn wait_for_primary(&self, timeout: Duration) -> BoxFuture<'_, Role>;

    /// Whether a follower's primary has gone silent in raft (killed, frozen,
    /// cut off), so clients must not be sent there.
    fn primary_silent(&self) -> bool {
        false
    }

    /// `Ok` when this node can serve: it knows a primary and has applied the
    /// committed log. `Err` says why not.
    fn ready(&self) -> Result<(), ClusterError>;

    /// Cluster facts for `/api/v1/status`.
    fn status(&self) -> ClusterStatus;

    /// Copies the blob of `zip`, which the catalog has but this node lacks
    /// (replication lag, or a corrupt copy), from a peer that holds it.
    fn fetch_blob(&self, zip: &ZipRef) -> BoxFuture<'_, Result<(), ClusterError>> {
        let _ = zip;
        Box::pin(async { Err(ClusterError::Unavailable("a single node has no peer to copy from".to_string())) })
    }

    /// A stored blob was found corrupt and quarantined.
    fn blob_corrupt(&self, sha: Sha256) {
        let _ = sha;
    }

    /// Where a blob lives, for `/api/v1/blobs/{sha256}`; `None` on a single node.
    fn blob(&self, sha: &Sha256) -> Option<BlobStatus> {
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

    fn commit(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            self.store.catalog.apply(&op)?;
            Ok(())
        })
    }

    fn audit(&self, record: AuditRecord) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            store::append_audit(self.store.catalog.db(), &record)?;
            Ok(())
        })
    }

    fn wait_for_primary(&self, _timeout: Duration) -> BoxFuture<'_, Role> {
        Box::pin(async { Role::Standalone })
    }

    fn ready(&self) -> Result<(), ClusterError> {
        let probe = self.store.catalog.db().get(store::CF_LOCAL, b"readyz-probe");
        probe.map(|_| ()).map_err(|e| ClusterError::Unavailable(format!("store unavailable: {e}")))
    }

    fn status(&self) -> ClusterStatus {
        ClusterStatus::Standalone
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn cluster_errors_become_503_with_retry_after_or_500() {
        let cases = [
            (ClusterError::NotPrimary { leader: Some(2) }, StatusCode::SERVICE_UNAVAILABLE, Some(1), "primary now: node 2"),
            (ClusterError::Timeout { after: Duration::from_secs(5) }, StatusCode::SERVICE_UNAVAILABLE, Some(2), "within 5s"),
            (
                ClusterError::TooFewCopies { held: 1, want: 2, waited: Duration::from_secs(3) },
                StatusCode::SERVICE_UNAVAILABLE,
                Some(2),
                "stored on 1 node(s) but replication.min_copies is 2",
            ),
            (ClusterError::Unavailable("no primary known".into()), StatusCode::SERVICE_UNAVAILABLE, Some(1), "no primary known"),
            (ClusterError::Fatal("stopped".into()), StatusCode::INTERNAL_SERVER_ERROR, None, "raft failed: stopped"),
        ];
        for (error, status, retry_after, says) in cases {
            let api = ApiError::from(error);
            assert_eq!((api.status, api.retry_after), (status, retry_after), "{}", api.message);
            assert!(api.message.contains(says), "{:?} does not say {says:?}", api.message);
            assert!(!api.message.contains('\n'), "one line: {:?}", api.message);
        }
    }
}
