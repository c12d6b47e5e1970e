//! The raft-backed implementation of the gateway's `Cluster` seam.

use std::sync::Arc;
use std::time::Duration;

use api::{BlobStatus, ClusterFacts, ClusterStatus, Member};
use futures::future::BoxFuture;
use gateway::{ClusterError, Role};
use raft::{Command, ControlPlane, ProposeError};
use replicator::Replicator;
use store::{CatalogOp, Sha256, ZipRef};

use crate::commit::COMMIT_TIMEOUT;

pub struct RaftCluster {
    pub(crate) control: ControlPlane,
    replicator: Replicator,
    pub(crate) advertise_url: String,
}

impl RaftCluster {
    pub fn new(control: ControlPlane, replicator: Replicator, advertise_url: String) -> Arc<Self> {
        Arc::new(RaftCluster { control, replicator, advertise_url })
    }

    /// With `replication.min_copies` ≥ 2, waits until that many nodes hold
    /// the blob of a zip just committed.
    async fn wait_min_copies(&self, zip: &ZipRef) -> Result<(), ClusterError> {
        let copies = self.replicator.min_copies();
        if copies < 2 {
            return Ok(());
        }
        let timeout = self.replicator.min_copies_timeout();
        self.replicator.wait_copies(&zip.sha256, copies, timeout).await.map_err(|held| {
            tracing::warn!(blob = %zip.sha256, held, copies, "zip not on enough nodes in time; answering 503 (replication goes on)");
            ClusterError::TooFewCopies { held, want: copies, waited: timeout }
        })
    }

    pub fn control(&self) -> &ControlPlane {
        &self.control
    }
}

impl gateway::Cluster for RaftCluster {
    fn role(&self) -> Role {
        if self.control.is_acting_primary() {
            return Role::Primary;
        }
        match self.control.leader() {
            Some(leader) if leader != self.control.node_id() => Role::Follower { primary: leader, url: self.control.gateway_url(leader) },
            _ => Role::NoPrimary,
        }
    }

    fn primary_silent(&self) -> bool {
        self.control.leader_silent()
    }

    fn commit(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            let zip = match &op {
                CatalogOp::PutVersion { parts, .. } => parts.zip.clone(),
                _ => None,
            };
            match self.control.write(Command::Catalog(op), COMMIT_TIMEOUT).await {
                // A zip the catalog already had with other content was not
                // recorded (first writer wins): no copies of it will come.
                Ok(applied) => match zip.filter(|_| !applied.kept.iter().any(|p| p == store::PART_ZIP)) {
                    Some(zip) => self.wait_min_copies(&zip).await,
                    None => Ok(()),
                },
                Err(e) => Err(not_committed(e)),
            }
        })
    }

    fn audit(&self, record: store::AuditRecord) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move { self.control.propose(Command::Audit(record), COMMIT_TIMEOUT).await.map(|_| ()).map_err(not_committed) })
    }

    fn wait_for_primary(&self, timeout: Duration) -> BoxFuture<'_, Role> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut status = self.control.watch();
            loop {
                let role = self.role();
                let settled = match &role {
                    Role::NoPrimary => false,
                    Role::Follower { url, .. } => url.is_some(),
                    _ => true,
                };
                if settled {
                    return role;
                }
                tokio::select! {
                    _ = status.changed() => {},
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {},
                    _ = tokio::time::sleep_until(deadline) => return self.role(),
                }
            }
        })
    }

    fn ready(&self) -> Result<(), ClusterError> {
        let s = self.control.status();
        if s.leader.is_none() || self.role() == Role::NoPrimary {
            return Err(ClusterError::Unavailable(format!("no primary known (role {:?}, term {})", s.role, s.term)));
        }
        // A restarted follower remembers the leader of its last term from its
        // stored vote; only a message from a live leader shows how far the
        // cluster has committed.
        let leader_commit = self.control.leader_commit();
        if !self.control.is_acting_primary() && leader_commit.is_none() {
            return Err(ClusterError::Unavailable("no message from the primary since start-up yet".to_string()));
        }
        // Its own committed index, or what a leader said is committed, which
        // is ahead when this node restarted with an old log.
        let committed = s.committed.max(leader_commit);
        match (s.last_applied, committed) {
            (applied, Some(committed)) if applied.unwrap_or(0) < committed => {
                Err(ClusterError::Unavailable(format!("catching up: applied {} of {committed} committed entries", applied.unwrap_or(0))))
            }
            _ => Ok(()),
        }
    }

    fn status(&self) -> ClusterStatus {
        let s = self.control.status();
        let members = self.control.member_addresses().into_iter();
        ClusterStatus::Member(Box::new(ClusterFacts {
            role: s.role,
            acting_primary: self.control.is_acting_primary(),
            term: s.term,
            primary_id: s.leader,
            primary_url: s.leader.and_then(|id| self.control.gateway_url(id)),
            members: members.map(|(id, cluster, gateway_url)| Member { id, cluster, gateway_url }).collect(),
            last_applied: s.last_applied,
            committed: s.committed,
            leader_commit: self.control.leader_commit(),
            ready: self.ready().is_ok(),
            last_log_index: s.last_log_index,
            millis_since_quorum_ack: s.millis_since_quorum_ack,
            voters: s.voters,
            advertise_url: self.advertise_url.clone(),
            replication: self.replicator.status(),
        }))
    }

    fn fetch_blob(&self, zip: &ZipRef) -> BoxFuture<'_, Result<(), ClusterError>> {
        let (sha, size) = (zip.sha256, zip.size);
        Box::pin(async move { self.replicator.fetch_now(sha, size).await.map_err(|e| ClusterError::Unavailable(e.to_string())) })
    }

    fn blob_corrupt(&self, sha: Sha256) {
        self.replicator.corrupt(sha);
    }

    fn blob(&self, sha: &Sha256) -> Option<BlobStatus> {
        Some(self.replicator.blob(sha))
    }
}

/// Why a proposal of this node did not commit, as the gateway sees it.
fn not_committed(e: ProposeError) -> ClusterError {
    match e {
        ProposeError::NotLeader { leader } => ClusterError::NotPrimary { leader },
        ProposeError::Timeout => ClusterError::Timeout { after: COMMIT_TIMEOUT },
        ProposeError::TooLarge { bytes, limit } => ClusterError::TooLarge { bytes, limit },
        ProposeError::Fatal(e) => ClusterError::Fatal(e),
    }
}
