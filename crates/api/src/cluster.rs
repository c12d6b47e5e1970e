//! The `cluster` object of `/api/v1/status`: where this node stands in the
//! cluster (raft facts, members, readiness) and its replication.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::ReplicationStatus;

/// How a node takes part in the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterStatus {
    /// A single node: serialised as `{"role": "standalone"}`.
    Standalone,
    /// A cluster member: its facts, at the top level of the object.
    Member(Box<ClusterFacts>),
}

impl Serialize for ClusterStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ClusterStatus::Standalone => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("role", "standalone")?;
                map.end()
            }
            ClusterStatus::Member(facts) => facts.serialize(serializer),
        }
    }
}

/// A node's raft role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftRole {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

impl RaftRole {
    /// The role as `/api/v1/status` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Follower => "follower",
            RaftRole::Candidate => "candidate",
            RaftRole::Learner => "learner",
            RaftRole::Shutdown => "shutdown",
        }
    }
}

/// What a cluster member knows: raft, members, readiness, replication.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterFacts {
    pub role: RaftRole,
    /// A leader with a fresh quorum: it fetches from upstream and commits.
    pub acting_primary: bool,
    pub term: u64,
    /// The leader this node knows of.
    pub primary_id: Option<u64>,
    /// The primary's announced gateway URL.
    pub primary_url: Option<String>,
    pub members: Vec<Member>,
    pub last_applied: Option<u64>,
    pub committed: Option<u64>,
    /// What the leader last said is committed.
    pub leader_commit: Option<u64>,
    /// Whether `/readyz` answers 200.
    pub ready: bool,
    pub last_log_index: Option<u64>,
    /// On the leader: time since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    pub voters: Vec<u64>,
    /// This node's own gateway URL.
    pub advertise_url: String,
    pub replication: ReplicationStatus,
}

/// A configured member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: u64,
    /// Its cluster (gRPC) address from `cluster.peers`.
    pub cluster: String,
    /// The gateway URL it announced, once it has.
    pub gateway_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::{Lag, QueueStatus};

    #[test]
    fn a_single_node_reports_only_its_role() {
        assert_eq!(serde_json::to_value(ClusterStatus::Standalone).unwrap(), json!({ "role": "standalone" }));
    }

    #[test]
    fn member_facts_serialise_to_the_status_keys() {
        let replication = ReplicationStatus {
            queue: QueueStatus { blobs: 0, bytes: 0, oldest_seconds: 0.0, failing: 0 },
            received_bytes: 0,
            sent_bytes: 0,
            resumed: 0,
            replicated_blobs: 0,
            failures: 0,
            corrupt_found: 0,
            deleted_blobs: 0,
            in_flight: 0,
            nodes: Lag::Nodes(BTreeMap::new()),
        };
        let facts = ClusterFacts {
            role: RaftRole::Leader,
            acting_primary: true,
            term: 3,
            primary_id: Some(1),
            primary_url: Some("http://127.0.0.1:1".into()),
            members: vec![Member { id: 1, cluster: "127.0.0.1:2".into(), gateway_url: None }],
            last_applied: Some(7),
            committed: Some(7),
            leader_commit: None,
            ready: true,
            last_log_index: Some(7),
            millis_since_quorum_ack: Some(12),
            voters: vec![1],
            advertise_url: "http://127.0.0.1:1".into(),
            replication: replication.clone(),
        };
        let value = serde_json::to_value(ClusterStatus::Member(Box::new(facts))).unwrap();
        assert_eq!(
            value,
            json!({
                "role": "leader", "acting_primary": true, "term": 3, "primary_id": 1,
                "primary_url": "http://127.0.0.1:1",
                "members": [{ "id": 1, "cluster": "127.0.0.1:2", "gateway_url": null }],
                "last_applied": 7, "committed": 7, "leader_commit": null, "ready": true, "last_log_index": 7,
                "millis_since_quorum_ack": 12, "voters": [1], "advertise_url": "http://127.0.0.1:1",
                "replication": serde_json::to_value(&replication).unwrap(),
            })
        );
    }
}
