//! `Verify` (every member, run by the primary) and `VerifyNode` (this node):
//! re-hash every blob now and repair corrupt copies from a peer.

use std::time::Duration;

use proto::v1::{BlobProblem, BlobRepair, NodeVerifyReport, NodeVerifyResult, VerifyReply, VerifyRequest};
use tonic::metadata::MetadataMap;
use tonic::Status;

use proto::tls::Transport;

use super::{passed_on, peer_client, AdminService, Node, PeerError};

/// How long one member may take to verify its blobs.
pub(super) const VERIFY_TIMEOUT: Duration = Duration::from_secs(3600);

impl AdminService {
    pub(super) async fn verify_here(&self) -> Result<NodeVerifyReport, Status> {
        let report = match &self.node {
            Node::Cluster { replicator, .. } => replicator.verify().await.map_err(|e| Status::internal(format!("verify failed: {e}")))?,
            Node::Single { .. } => self.verify_single().await?,
        };
        Ok(NodeVerifyReport {
            checked_blobs: report.checked,
            checked_bytes: report.bytes,
            missing_blobs: report.missing,
            corrupt: report
                .corrupt
                .into_iter()
                .map(|r| BlobRepair {
                    sha256: r.sha.to_hex(),
                    size: r.size,
                    repaired: r.repaired.is_ok(),
                    error: r.repaired.err().map(|e| e.to_string()).unwrap_or_default(),
                })
                .collect(),
            unreadable: report.unreadable.into_iter().map(|(sha, error)| BlobProblem { sha256: sha.to_hex(), error }).collect(),
        })
    }

    /// A single node re-hashes its blobs; it has no peer to repair from, so
    /// a corrupt copy (quarantined by the store) is fetched again from
    /// upstream by the next request for it.
    async fn verify_single(&self) -> Result<replicator::VerifyReport, Status> {
        let catalog = self.catalog.clone();
        let blobs = self.store.blobs.clone();
        let task = tokio::task::spawn_blocking(move || -> Result<replicator::VerifyReport, store::Error> {
            let mut report = replicator::VerifyReport::default();
            let mut seen = std::collections::BTreeSet::new();
            for (_, _, zip) in catalog.all_zips()? {
                let sha = zip.sha256;
                if !seen.insert(sha) {
                    continue;
                }
                match blobs.verify(&sha) {
                    Ok(true) => {
                        report.checked += 1;
                        report.bytes += zip.size;
                    }
                    Ok(false) => report.missing += 1,
                    Err(store::Error::Corrupt { .. }) => {
                        report.corrupt.push(replicator::Repair { sha, size: zip.size, repaired: Err(replicator::Error::NoPeer) })
                    }
                    Err(e) => report.unreadable.push((sha, e.to_string())),
                }
            }
            Ok(report)
        });
        match task.await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(e)) => Err(Status::internal(format!("verify failed: {e}"))),
            Err(e) => Err(Status::internal(format!("verify task failed: {e}"))),
        }
    }

    /// Every member verifies at once; this node answers for itself.
    pub(super) async fn verify_all(&self, metadata: &MetadataMap) -> VerifyReply {
        let me = self.me();
        let members = match &self.node {
            Node::Cluster { control, .. } => control.member_addresses().into_iter().map(|(id, addr, _)| (id, addr)).collect(),
            Node::Single { listen, .. } => vec![(me, listen.clone())],
        };
        let runs = members.into_iter().map(|(id, addr)| {
            let metadata = metadata.clone();
            async move {
                let result = if id == me {
                    self.verify_here().await.map_err(PeerError::Refused)
                } else {
                    ask(&self.transport(), me, &addr, &metadata).await
                };
                match result {
                    Ok(report) => NodeVerifyResult { node_id: id, reachable: true, error: String::new(), report: Some(report) },
                    Err(error) => NodeVerifyResult { node_id: id, reachable: false, error: error.to_string(), report: None },
                }
            }
        });
        VerifyReply { nodes: futures::future::join_all(runs).await }
    }
}

async fn ask(transport: &Transport, me: u64, addr: &str, metadata: &MetadataMap) -> Result<NodeVerifyReport, PeerError> {
    let mut client = peer_client(transport, addr, VERIFY_TIMEOUT).await?;
    client.verify_node(passed_on(me, metadata, VerifyRequest {})).await.map(|r| r.into_inner()).map_err(PeerError::Refused)
}

/// One line for the audit log.
pub(super) fn summary(reply: &VerifyReply) -> String {
    let reports: Vec<&NodeVerifyReport> = reply.nodes.iter().filter_map(|n| n.report.as_ref()).collect();
    let corrupt: usize = reports.iter().map(|r| r.corrupt.len()).sum();
    let repaired: usize = reports.iter().map(|r| r.corrupt.iter().filter(|c| c.repaired).count()).sum();
    let unreachable: Vec<String> = reply.nodes.iter().filter(|n| !n.reachable).map(|n| n.node_id.to_string()).collect();
    let mut text = format!("ok: {corrupt} corrupt, {repaired} repaired");
    if !unreachable.is_empty() {
        text.push_str(&format!("; nodes not verified: {}", unreachable.join(", ")));
    }
    text
}
