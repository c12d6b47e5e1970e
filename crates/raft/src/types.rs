//! What the replicated log carries: openraft's type configuration for
//! Flotilla, the [`Command`]s that change the catalog, and the cluster
//! member record.

use std::fmt;

use serde::{Deserialize, Serialize};
use store::{AuditRecord, CatalogOp, Sha256};

openraft::declare_raft_types!(
    /// Flotilla's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = ClusterNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A raft member as the membership records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// Cluster gRPC address, `host:port`.
    pub addr: String,
    /// Advertised HTTP URL of the node's gateway; empty in the bootstrap
    /// membership; the announced URL lives in the state machine.
    pub gateway_url: String,
}

impl fmt::Display for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if !self.gateway_url.is_empty() {
            write!(f, " ({})", self.gateway_url)?;
        }
        Ok(())
    }
}

/// A change to the replicated state. Only the leader proposes them; every
/// node applies them in log order. Applying one twice equals applying it once.
///
/// Serialized with serde's external tagging, so a new variant can be added
/// without breaking the decoding of old entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Catalog(CatalogOp),
    /// Records the gateway URL that `node_id` advertises, so every node knows
    /// where to redirect clients when that node is primary.
    AnnounceNode {
        node_id: u64,
        gateway_url: String,
    },
    /// Placement: `node_id` holds verified copies of these blobs (sha256,
    /// hex in the log).
    BlobStored {
        node_id: u64,
        blobs: Vec<Sha256>,
    },
    /// Placement: `node_id` no longer holds these blobs (it lost its data
    /// directory, or found its copy corrupt); it pulls them again.
    BlobLost {
        node_id: u64,
        blobs: Vec<Sha256>,
    },
    /// An entry of the audit log: an admin call that changed (or tried to
    /// change) the cluster. Kept under the index of its log entry.
    Audit(AuditRecord),
}

/// What applying the log did that the blob replicator must react to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateEvent {
    /// An applied catalog entry references this zip blob.
    Zip { sha256: Sha256, size: u64 },
    /// The catalog was replaced by a snapshot: rescan everything.
    Reset,
    /// Placement now lists `node_id` as holding this blob.
    Stored { sha256: Sha256, node_id: u64 },
    /// Placement no longer lists `node_id` as holding this blob.
    Lost { sha256: Sha256, node_id: u64 },
    /// A purge removed the version that referenced this zip blob, and its
    /// placement.
    Purged { sha256: Sha256 },
}

/// The state machine's answer to one applied entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Index of the applied log entry.
    pub index: u64,
    /// Parts of a version (`"info"`, `"mod"`, `"zip"`) the entry offered but
    /// the catalog already recorded with other content, and kept.
    #[serde(default)]
    pub kept: Vec<String>,
}

pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type LogId = openraft::LogId<u64>;
pub(crate) type Vote = openraft::Vote<u64>;
pub(crate) type StoredMembership = openraft::StoredMembership<u64, ClusterNode>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<u64, ClusterNode>;
pub(crate) type Snapshot = openraft::storage::Snapshot<TypeConfig>;
pub(crate) type StorageError = openraft::StorageError<u64>;
