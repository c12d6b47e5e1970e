//! The cluster port's authentication: what a node proves on every cluster
//! RPC (raft and blobs) and what it checks before a request body is read.

use std::collections::BTreeMap;

use proto::tls::{PeerIdentity, Transport};
use subtle::ConstantTimeEq;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Endpoint;
use tonic::{Request, Status};

use crate::Error;

const SECRET_HEADER: &str = "x-flotilla-secret";
const CLUSTER_HEADER: &str = "x-flotilla-cluster";

/// What a node proves and checks on every cluster RPC (raft and blobs),
/// and how it reaches its peers.
pub struct ClusterAuth {
    secret: AsciiMetadataValue,
    cluster_id: AsciiMetadataValue,
    peers: BTreeMap<u64, String>,
    /// Who is admitted: the raft membership (voters and learners) once this
    /// node knows it, `peers` before (a node joining a cluster).
    members: parking_lot::RwLock<std::collections::BTreeSet<u64>>,
    transport: Transport,
}

/// The member a cluster RPC came from, as its TLS certificate names it (set
/// by [`ClusterAuth::intercept`] before the request body is read).
#[derive(Clone, Copy, Debug)]
struct CertifiedSender(u64);

fn remote_of<T>(request: &Request<T>) -> String {
    request.remote_addr().map_or_else(|| "an unknown address".to_string(), |a| a.to_string())
}

impl ClusterAuth {
    pub(crate) fn new(secret: &str, cluster_id: &str, peers: BTreeMap<u64, String>, transport: Transport) -> Result<Self, Error> {
        let header = |what: &str, value: &str| {
            AsciiMetadataValue::try_from(value).map_err(|_| Error::Config(format!("the {what} must be printable ASCII without newlines")))
        };
        let members = parking_lot::RwLock::new(peers.keys().copied().collect());
        Ok(ClusterAuth {
            secret: header("cluster secret", secret)?,
            cluster_id: header("cluster id", cluster_id)?,
            peers,
            members,
            transport,
        })
    }

    /// The members admitted from now on (the raft membership changed).
    pub(crate) fn set_members(&self, ids: std::collections::BTreeSet<u64>) {
        if ids.is_empty() {
            return;
        }
        let mut members = self.members.write();
        if *members != ids {
            tracing::info!(members = ?ids, "cluster members admitted on the cluster port follow the raft membership");
            *members = ids;
        }
    }

    /// Ids of the members admitted now.
    pub fn members(&self) -> Vec<u64> {
        self.members.read().iter().copied().collect()
    }

    /// The configured (`cluster.peers`) address of `id`.
    pub(crate) fn configured_addr(&self, id: u64) -> Option<&String> {
        self.peers.get(&id)
    }

    /// Adds this cluster's credentials, and the wire version
    /// (`proto::wire`), to an outgoing request.
    pub fn stamp<T>(&self, request: &mut Request<T>) {
        proto::wire::stamp(request.metadata_mut());
        request.metadata_mut().insert(SECRET_HEADER, self.secret.clone());
        request.metadata_mut().insert(CLUSTER_HEADER, self.cluster_id.clone());
    }

    /// How this node reaches the cluster port (plaintext or mutual TLS).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A channel endpoint to member `target` at `addr`, whose certificate
    /// must name `node-<target>` (the one channel builder of the cluster port).
    pub fn endpoint(&self, target: u64, addr: &str) -> Result<Endpoint, proto::tls::TlsError> {
        self.transport.endpoint(addr, &proto::tls::node_name(target))
    }

    /// The wire version, the secret and the cluster id of a request.
    fn check_headers(&self, metadata: &tonic::metadata::MetadataMap, remote: &str, rpc: &str) -> Result<(), Status> {
        if let Err(refused) = proto::wire::check(metadata) {
            tracing::warn!(%remote, rpc, reason = refused.message(), "refused cluster RPC: another wire version");
            return Err(refused);
        }
        let secret_ok = metadata.get(SECRET_HEADER).is_some_and(|given| bool::from(given.as_bytes().ct_eq(self.secret.as_bytes())));
        if !secret_ok {
            tracing::warn!(%remote, rpc, "refused cluster RPC: wrong cluster secret (or none)");
            return Err(Status::unauthenticated("wrong cluster secret: the caller's cluster.secret_file differs from this node's"));
        }
        let cluster = metadata.get(CLUSTER_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
        if cluster != self.cluster_id.as_bytes() {
            let theirs = String::from_utf8_lossy(cluster);
            let ours = String::from_utf8_lossy(self.cluster_id.as_bytes());
            tracing::warn!(%remote, rpc, caller_cluster = %theirs, "refused cluster RPC: caller belongs to another cluster");
            return Err(Status::failed_precondition(format!(
                "wrong cluster: the caller is in cluster {theirs:?}, this node is in cluster {ours:?}"
            )));
        }
        Ok(())
    }

    /// On a TLS connection, the member its certificate names (anything else
    /// is refused); `None` on a plaintext one.
    fn certified<T>(&self, request: &Request<T>, remote: &str, rpc: &str) -> Result<Option<u64>, Status> {
        match proto::tls::peer_identity(request, self.members()) {
            None if self.transport.is_tls() => {
                tracing::warn!(%remote, rpc, "refused cluster RPC: no client certificate");
                Err(Status::unauthenticated("a member's client certificate is required"))
            }
            None => Ok(None),
            Some(PeerIdentity::Node(id)) => Ok(Some(id)),
            Some(other) => {
                tracing::warn!(%remote, rpc, peer = ?other, "refused cluster RPC: the certificate does not name a member of the cluster (its raft membership)");
                Err(Status::permission_denied(
                    "the client certificate does not name a member of this cluster (node-<id> of a member of the raft membership)",
                ))
            }
        }
    }

    /// Checks a request on its headers and connection alone, before its
    /// body is read: secret, cluster id and, over TLS, the member the
    /// certificate names (kept in the request for [`ClusterAuth::admit`]).
    pub fn intercept(&self, mut request: Request<()>, service: &str) -> Result<Request<()>, Status> {
        let remote = remote_of(&request);
        self.check_headers(request.metadata(), &remote, service)?;
        if let Some(id) = self.certified(&request, &remote, service)? {
            request.extensions_mut().insert(CertifiedSender(id));
        }
        Ok(request)
    }

    /// Refuses (and logs) a request from outside the cluster and returns
    /// the sender's node id: over TLS the member its certificate names (a
    /// message claiming another node in `from` is refused), in plaintext
    /// `from` if it is a configured peer.
    pub fn admit<T>(&self, request: &Request<T>, from: u64, rpc: &str) -> Result<u64, Status> {
        let remote = remote_of(request);
        let certified = match request.extensions().get::<CertifiedSender>() {
            Some(&CertifiedSender(id)) => Some(id),
            None => {
                self.check_headers(request.metadata(), &remote, rpc)?;
                self.certified(request, &remote, rpc)?
            }
        };
        if let Some(id) = certified {
            if from != id {
                tracing::warn!(%remote, from, certificate = id, rpc, "refused cluster RPC: the message claims another node than its certificate names");
                return Err(Status::permission_denied(format!(
                    "the message claims to come from node {from}, but the client certificate names node {id}"
                )));
            }
            return Ok(id);
        }
        if !self.members.read().contains(&from) {
            tracing::warn!(%remote, from, rpc, "refused cluster RPC: node id is not a cluster member");
            return Err(Status::permission_denied(format!("node {from} is not a member of this node's cluster (raft membership)")));
        }
        Ok(from)
    }
}
