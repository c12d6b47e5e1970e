//! What the rest of Flotilla sees of raft: a plain status derived from
//! openraft's metrics.

use std::time::Instant;

use openraft::{RaftMetrics, ServerState};
use serde::Serialize;

use crate::types::ClusterNode;

/// The raft role, as reported in `/api/v1/status` (one type with crate `api`).
pub use api::RaftRole as Role;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RaftStatus {
    pub node_id: u64,
    pub role: Role,
    pub term: u64,
    /// The leader this node knows of (itself when leader).
    pub leader: Option<u64>,
    pub last_applied: Option<u64>,
    pub committed: Option<u64>,
    pub last_log_index: Option<u64>,
    /// On the leader: time since a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    pub voters: Vec<u64>,
}

impl RaftStatus {
    pub(crate) fn from_metrics(metrics: &RaftMetrics<u64, ClusterNode>, committed: Option<u64>, quorum_acked_at: Option<Instant>) -> Self {
        let role = match metrics.state {
            _ if metrics.running_state.is_err() => Role::Shutdown,
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        let millis_since_quorum_ack = match role {
            Role::Leader => quorum_acked_at.map(|at| at.elapsed().as_millis() as u64),
            _ => None,
        };
        RaftStatus {
            node_id: metrics.id,
            role,
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_applied: metrics.last_applied.map(|id| id.index),
            committed,
            last_log_index: metrics.last_log_index,
            millis_since_quorum_ack,
            voters: metrics.membership_config.membership().voter_ids().collect(),
        }
    }

    /// What is left of the status once raft has stopped on this node.
    pub(crate) fn stopped(&mut self) {
        self.role = Role::Shutdown;
        self.leader = None;
        self.millis_since_quorum_ack = None;
    }

    /// Whether this node is the leader *and* a quorum acknowledged it less
    /// than `lease_ms` ago. openraft 0.9 never makes a cut-off leader step
    /// down, so the role alone would keep a partitioned node "primary".
    pub(crate) fn acts_as_primary(&self, lease_ms: u64) -> bool {
        self.role == Role::Leader && self.millis_since_quorum_ack.is_some_and(|age| age < lease_ms)
    }
}
