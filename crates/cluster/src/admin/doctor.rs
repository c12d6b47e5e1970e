//! `CheckUpstream`: can this node (or every member) reach its upstream proxies?

use std::time::Duration;

use proto::v1::{CheckUpstreamReply, CheckUpstreamRequest, NodeUpstream, UpstreamProbe};
use tonic::metadata::MetadataMap;

use proto::tls::Transport;

use super::{passed_on, peer_client, AdminService, Node, PeerError};

/// DNS, TCP and an HTTP request per proxy, with their own timeouts.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

impl AdminService {
    pub(super) async fn probe_here(&self) -> Vec<UpstreamProbe> {
        self.upstream
            .probe()
            .await
            .into_iter()
            .map(|p| UpstreamProbe { proxy: p.proxy, step: p.step.to_string(), detail: p.detail, hint: p.hint })
            .collect()
    }

    pub(super) async fn check_upstream(&self, req: &CheckUpstreamRequest, metadata: &MetadataMap) -> CheckUpstreamReply {
        let me = self.me();
        let members = match &self.node {
            Node::Cluster { control, .. } if req.all_members => {
                control.member_addresses().into_iter().map(|(id, addr, _)| (id, addr)).collect()
            }
            _ => vec![(me, String::new())],
        };
        let asks = members.into_iter().map(|(id, addr)| {
            let metadata = metadata.clone();
            async move {
                let answer = if id == me { Ok(self.probe_here().await) } else { ask(&self.transport(), me, &addr, &metadata).await };
                match answer {
                    Ok(proxies) => NodeUpstream { node_id: id, reachable: true, error: String::new(), proxies },
                    Err(error) => NodeUpstream { node_id: id, reachable: false, error: error.to_string(), proxies: Vec::new() },
                }
            }
        });
        CheckUpstreamReply { nodes: futures::future::join_all(asks).await }
    }
}

async fn ask(transport: &Transport, me: u64, addr: &str, metadata: &MetadataMap) -> Result<Vec<UpstreamProbe>, PeerError> {
    let mut client = peer_client(transport, addr, PEER_TIMEOUT).await?;
    let request = passed_on(me, metadata, CheckUpstreamRequest { all_members: false });
    let reply = client.check_upstream(request).await.map_err(PeerError::Refused)?.into_inner();
    Ok(reply.nodes.into_iter().flat_map(|n| n.proxies).collect())
}
