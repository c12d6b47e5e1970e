//! What the replicator reports: `cluster.replication` of `/api/v1/status`
//! and the answer of `/api/v1/blobs/{sha256}`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Replication facts of this node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplicationStatus {
    pub queue: QueueStatus,
    /// Blob bytes pulled from peers since start-up.
    pub received_bytes: u64,
    /// Blob bytes served to peers since start-up.
    pub sent_bytes: u64,
    /// Pulls that resumed a partial file.
    pub resumed: u64,
    pub replicated_blobs: u64,
    /// Failed pulls (each is retried).
    pub failures: u64,
    pub corrupt_found: u64,
    pub deleted_blobs: u64,
    /// Blobs being pulled right now.
    pub in_flight: usize,
    /// What each member lacks, by node id.
    pub nodes: Lag,
}

/// This node's replication queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueStatus {
    pub blobs: u64,
    pub bytes: u64,
    /// Age of the oldest queued blob; 0 with an empty queue.
    pub oldest_seconds: f64,
    /// Queued blobs whose last pull failed.
    pub failing: u64,
}

/// Per-member lag, or why it could not be computed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Lag {
    Nodes(BTreeMap<u64, NodeLag>),
    Unavailable { error: String },
}

/// Referenced blobs placement does not list for one member.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NodeLag {
    pub missing_blobs: u64,
    pub missing_bytes: u64,
    /// Since this node first saw the oldest of them applied; 0 when none is missing.
    pub oldest_missing_seconds: f64,
}

/// What this node knows about one blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlobStatus {
    pub sha256: String,
    /// Whether this node holds the blob.
    pub local: bool,
    /// Size of the local copy.
    pub size: Option<u64>,
    /// Nodes placement lists as holding it.
    pub nodes: Vec<u64>,
    /// Its replication queue entry on this node, if queued.
    pub queued: Option<QueuedBlob>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueuedBlob {
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Bytes already in its partial file.
    pub bytes_done: u64,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_serialises_to_the_keys_the_status_endpoint_shows() {
        let status = ReplicationStatus {
            queue: QueueStatus { blobs: 1, bytes: 2, oldest_seconds: 3.5, failing: 0 },
            received_bytes: 4,
            sent_bytes: 5,
            resumed: 6,
            replicated_blobs: 7,
            failures: 8,
            corrupt_found: 9,
            deleted_blobs: 10,
            in_flight: 11,
            nodes: Lag::Nodes(BTreeMap::from([(2, NodeLag { missing_blobs: 1, missing_bytes: 2, oldest_missing_seconds: 0.5 })])),
        };
        let expected = json!({
            "queue": { "blobs": 1, "bytes": 2, "oldest_seconds": 3.5, "failing": 0 },
            "received_bytes": 4, "sent_bytes": 5, "resumed": 6, "replicated_blobs": 7, "failures": 8,
            "corrupt_found": 9, "deleted_blobs": 10, "in_flight": 11,
            "nodes": { "2": { "missing_blobs": 1, "missing_bytes": 2, "oldest_missing_seconds": 0.5 } },
        });
        assert_eq!(serde_json::to_value(&status).unwrap(), expected);
        let failed = Lag::Unavailable { error: "disk".into() };
        assert_eq!(serde_json::to_value(&failed).unwrap(), json!({ "error": "disk" }));
    }

    #[test]
    fn blob_status_keeps_nulls() {
        let blob = BlobStatus { sha256: "ab".into(), local: false, size: None, nodes: vec![1], queued: None };
        assert_eq!(
            serde_json::to_value(&blob).unwrap(),
            json!({ "sha256": "ab", "local": false, "size": null, "nodes": [1], "queued": null })
        );
    }
}
