//! `NodeStatus` (this node's own facts) and `ClusterStatus` (every member's,
//! asked over the cluster port, with the lag this node computes from
//! placement).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::v1::{ClusterStatusReply, FailingBlob, MemberStatus, NodeStatusReply, NodeStatusRequest};
use replicator::Lag;
use tonic::metadata::MetadataMap;

use super::{passed_on, peer_client, AdminService};

/// How long a member may take to report its status before it counts as unreachable.
const PEER_TIMEOUT: Duration = Duration::from_millis(1500);
/// At most this many failing blobs are listed per node.
const FAILING_SHOWN: usize = 20;

impl AdminService {
    pub(super) fn local_status(&self) -> NodeStatusReply {
        let raft = self.control.status();
        let replication = self.replicator.status();
        let blobs = self.store.blobs.stats();
        let (disk_free_bytes, disk_total_bytes) = disk_space(self.store.data_dir());
        let failing = self
            .replicator
            .failing(FAILING_SHOWN)
            .into_iter()
            .map(|(sha, e)| FailingBlob {
                sha256: sha.to_hex(),
                size: e.size,
                attempts: e.attempts,
                last_error: e.last_error.unwrap_or_default(),
            })
            .collect();
        NodeStatusReply {
            node_id: self.control.node_id(),
            role: serde_json::to_value(raft.role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            acting_primary: self.control.is_acting_primary(),
            term: raft.term,
            leader: raft.leader.unwrap_or(0),
            last_applied: raft.last_applied.unwrap_or(0),
            committed: raft.committed.unwrap_or(0),
            gateway_url: self.advertise_url.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            blob_count: blobs.count,
            blob_bytes: blobs.bytes,
            disk_free_bytes,
            disk_total_bytes,
            unix_time_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            queue_blobs: replication.queue.blobs,
            queue_bytes: replication.queue.bytes,
            queue_oldest_seconds: replication.queue.oldest_seconds,
            in_flight: replication.in_flight as u64,
            received_bytes: replication.received_bytes,
            sent_bytes: replication.sent_bytes,
            replicated_blobs: replication.replicated_blobs,
            pull_failures: replication.failures,
            failing,
            voters: raft.voters,
        }
    }

    /// Every member's status, asked concurrently; this node answers for itself.
    pub(super) async fn cluster(&self, metadata: &MetadataMap) -> ClusterStatusReply {
        let me = self.control.node_id();
        let asks = self.control.member_addresses().into_iter().map(|(id, addr, gateway)| {
            let metadata = metadata.clone();
            async move {
                let reported = if id == me { Ok(self.local_status()) } else { ask(me, &addr, &metadata).await };
                (id, addr, gateway, reported)
            }
        });
        let answers = futures::future::join_all(asks).await;
        let (lag, lag_error) = match self.replicator.status().nodes {
            Lag::Nodes(nodes) => (nodes, String::new()),
            Lag::Unavailable { error } => (Default::default(), error),
        };
        let mut members = Vec::new();
        for (id, cluster_addr, gateway, reported) in answers {
            let lag = lag.get(&id).copied();
            let (status, error) = match reported {
                Ok(status) => (Some(status), String::new()),
                Err(e) => (None, e),
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
fn primary(members: &[MemberStatus]) -> u64 {
    members.iter().filter_map(|m| m.status.as_ref()).filter(|s| s.acting_primary).max_by_key(|s| s.term).map_or(0, |s| s.node_id)
}

async fn ask(me: u64, addr: &str, metadata: &MetadataMap) -> Result<NodeStatusReply, String> {
    let call = async {
        let mut client = peer_client(addr, PEER_TIMEOUT).await?;
        client.node_status(passed_on(me, metadata, NodeStatusRequest {})).await.map(|r| r.into_inner()).map_err(|s| s.message().to_string())
    };
    match tokio::time::timeout(PEER_TIMEOUT, call).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {PEER_TIMEOUT:?}")),
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
