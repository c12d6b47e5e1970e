//! `NodeStatus` (this node's own facts) and `ClusterStatus` (every member's,
//! asked over the cluster port, with the lag this node computes from
//! placement).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::Lag;
use proto::v1::{ClusterStatusReply, FailingBlob, MemberStatus, NodeStatusReply, NodeStatusRequest, RaftMember, WorkerInfo};
use tonic::metadata::MetadataMap;

use proto::tls::Transport;

use super::{passed_on, peer_client, AdminService, Node, PeerError};

/// How long a member may take to report its status before it counts as unreachable.
const PEER_TIMEOUT: Duration = Duration::from_millis(1500);
/// At most this many failing blobs are listed per node.
const FAILING_SHOWN: usize = 20;

impl AdminService {
    pub(super) fn local_status(&self) -> NodeStatusReply {
        let blobs = self.store.blobs.stats();
        let (disk_free_bytes, disk_total_bytes) = disk_space(self.store.data_dir());
        let mut status = NodeStatusReply {
            node_id: self.me(),
            gateway_url: self.advertise_url.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            blob_count: blobs.count,
            blob_bytes: blobs.bytes,
            disk_free_bytes,
            disk_total_bytes,
            unix_time_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            workers: self.workers.status().into_iter().map(worker_info).collect(),
            ..Default::default()
        };
        match &self.node {
            Node::Single { node_id, .. } => {
                status.role = "standalone".to_string();
                status.acting_primary = true;
                status.leader = *node_id;
                status.voters = vec![*node_id];
            }
            Node::Cluster { control, replicator } => {
                let raft = control.status();
                let replication = replicator.status();
                status.role = serde_json::to_value(raft.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                status.acting_primary = control.is_acting_primary();
                status.term = raft.term;
                status.leader = raft.leader.unwrap_or(0);
                status.last_applied = raft.last_applied.unwrap_or(0);
                status.committed = raft.committed.unwrap_or(0);
                status.voters = raft.voters;
                status.raft_members =
                    control.membership().into_iter().map(|(node_id, addr, voter)| RaftMember { node_id, addr, voter }).collect();
                status.configured_peers = control.configured_peers();
                status.queue_blobs = replication.queue.blobs;
                status.queue_bytes = replication.queue.bytes;
                status.queue_oldest_seconds = replication.queue.oldest_seconds;
                status.in_flight = replication.in_flight as u64;
                status.received_bytes = replication.received_bytes;
                status.sent_bytes = replication.sent_bytes;
                status.replicated_blobs = replication.replicated_blobs;
                status.pull_failures = replication.failures;
                status.failing = replicator
                    .failing(FAILING_SHOWN)
                    .into_iter()
                    .map(|(sha, e)| FailingBlob {
                        sha256: sha.to_hex(),
                        size: e.size,
                        attempts: e.attempts,
                        last_error: e.last_error.unwrap_or_default(),
                    })
                    .collect();
            }
        }
        status
    }

    /// Every member's status, asked concurrently; this node answers for itself.
    pub(super) async fn cluster(&self, metadata: &MetadataMap) -> ClusterStatusReply {
        let me = self.me();
        let members = match &self.node {
            Node::Cluster { control, .. } => control.member_addresses(),
            Node::Single { listen, .. } => vec![(me, listen.clone(), Some(self.advertise_url.clone()))],
        };
        let asks = members.into_iter().map(|(id, addr, gateway)| {
            let metadata = metadata.clone();
            async move {
                let reported = if id == me { Ok(self.local_status()) } else { ask(&self.transport(), me, &addr, &metadata).await };
                (id, addr, gateway, reported)
            }
        });
        let answers = futures::future::join_all(asks).await;
        let lag = match &self.node {
            Node::Cluster { replicator, .. } => replicator.status().nodes,
            Node::Single { .. } => Lag::Nodes(Default::default()),
        };
        let (lag, lag_error) = match lag {
            Lag::Nodes(nodes) => (nodes, String::new()),
            Lag::Unavailable { error } => (Default::default(), error),
        };
        let mut members = Vec::new();
        for (id, cluster_addr, gateway, reported) in answers {
            let lag = lag.get(&id).copied();
            let (status, error) = match reported {
                Ok(status) => (Some(status), String::new()),
                Err(e) => (None, e.to_string()),
            };
            members.push(MemberStatus {
                node_id: id,
                cluster_addr,
                gateway_url: gateway.or_else(|| status.as_ref().map(|s| s.gateway_url.clone())).unwrap_or_default(),
                reachable: status.is_some(),
                error,
                status,
                missing_blobs: lag.map_or(0, |l| l.missing_blobs),
                missing_bytes: lag.map_or(0, |l| l.missing_bytes),
                oldest_missing_seconds: lag.map_or(0.0, |l| l.oldest_missing_seconds),
            });
        }
        ClusterStatusReply { answered_by: me, primary: primary(&members), members, lag_error }
    }
}

/// The member that reports acting as primary (the highest term wins should
/// two ever claim it); 0 when none does.
fn worker_info(w: api::WorkerStatus) -> WorkerInfo {
    let state = serde_json::to_value(w.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    WorkerInfo {
        name: w.name,
        state,
        detail: w.detail.unwrap_or_default(),
        last_error: w.last_error.unwrap_or_default(),
        last_error_at_ms: w.last_error_at_ms.unwrap_or(0),
        errors: w.errors,
        completed: w.completed,
    }
}

fn primary(members: &[MemberStatus]) -> u64 {
    members.iter().filter_map(|m| m.status.as_ref()).filter(|s| s.acting_primary).max_by_key(|s| s.term).map_or(0, |s| s.node_id)
}

async fn ask(transport: &Transport, me: u64, addr: &str, metadata: &MetadataMap) -> Result<NodeStatusReply, PeerError> {
    let call = async {
        let mut client = peer_client(transport, addr, PEER_TIMEOUT).await?;
        client.node_status(passed_on(me, metadata, NodeStatusRequest {})).await.map(|r| r.into_inner()).map_err(PeerError::Refused)
    };
    match tokio::time::timeout(PEER_TIMEOUT, call).await {
        Ok(answer) => answer,
        Err(_) => Err(PeerError::Timeout(PEER_TIMEOUT)),
    }
}

/// Free and total bytes of the file system holding `dir`; zeros when unknown.
fn disk_space(dir: &std::path::Path) -> (u64, u64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => (s.f_bavail.saturating_mul(s.f_frsize), s.f_blocks.saturating_mul(s.f_frsize)),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "statvfs failed");
            (0, 0)
        }
    }
}
