//! The raft transport: a tonic client per peer for openraft, and the
//! `flotilla.v1.Raft` service that hands incoming RPCs to the local raft.
//!
//! Every RPC carries the cluster secret (`x-flotilla-secret`) and the cluster
//! id (`x-flotilla-cluster`); the server also admits only members: the raft
//! membership (voters and learners) once known, `cluster.peers` before.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::AnyError;
use proto::tls::{PeerIdentity, Transport};
use proto::{AnnounceReply, AnnounceRequest, RaftClient, RaftReply, RaftRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::types::{ClusterNode, Command, Raft, TypeConfig, Vote};
use crate::Error;

const SECRET_HEADER: &str = "x-flotilla-secret";
const CLUSTER_HEADER: &str = "x-flotilla-cluster";
/// An AppendEntries batch or a snapshot chunk may exceed tonic's 4 MiB default.
pub(crate) const MAX_MESSAGE_SIZE: usize = 64 << 20;

type RpcError<E = openraft::error::Infallible> = RPCError<u64, ClusterNode, RaftError<u64, E>>;

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

    /// Adds this cluster's credentials to an outgoing request.
    pub fn stamp<T>(&self, request: &mut Request<T>) {
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

    /// The secret and the cluster id of a request.
    fn check_headers(&self, metadata: &tonic::metadata::MetadataMap, remote: &str, rpc: &str) -> Result<(), Status> {
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

/// Builds openraft's per-peer clients.
pub(crate) struct Network {
    pub(crate) node_id: u64,
    pub(crate) auth: Arc<ClusterAuth>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &ClusterNode) -> PeerClient {
        // The configured address wins over the one in the membership log, so
        // moving a peer takes a config change only.
        let addr = self.auth.peers.get(&target).cloned().unwrap_or_else(|| node.addr.clone());
        let client = self
            .auth
            .endpoint(target, &addr)
            .map(|endpoint| {
                let channel = endpoint.connect_lazy();
                RaftClient::new(channel).max_decoding_message_size(MAX_MESSAGE_SIZE).max_encoding_message_size(MAX_MESSAGE_SIZE)
            })
            .map_err(|e| Arc::new(Error::BadAddress { reason: format!("invalid cluster address of node {target}: {e}"), addr }));
        PeerClient { from: self.node_id, target, client, auth: self.auth.clone() }
    }
}

pub(crate) struct PeerClient {
    from: u64,
    target: u64,
    client: Result<RaftClient<Channel>, Arc<Error>>,
    auth: Arc<ClusterAuth>,
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(&mut self, rpc: Rpc, req: &Req, data: Vec<u8>) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = self.client.clone().map_err(|e| Unreachable::new(&AnyError::error(e)))?;
        let payload = serde_json::to_vec(req).map_err(|e| NetworkError::new(&e))?;
        let mut request = Request::new(RaftRequest { from: self.from, payload, data });
        self.auth.stamp(&mut request);
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(status_error)?.into_inner();
        if !reply.raft_error.is_empty() {
            let err: RaftError<u64, E> = serde_json::from_slice(&reply.raft_error).map_err(|e| NetworkError::new(&e))?;
            return Err(RPCError::RemoteError(RemoteError::new(self.target, err)));
        }
        if !reply.error.is_empty() {
            return Err(NetworkError::new(&AnyError::error(reply.error)).into());
        }
        Ok(serde_json::from_slice(&reply.payload).map_err(|e| NetworkError::new(&e))?)
    }
}

/// Connection failures and refusals make openraft back off before retrying;
/// anything else is retried at once.
fn status_error<E: std::error::Error>(status: Status) -> RpcError<E> {
    match status.code() {
        Code::Unavailable
        | Code::Unauthenticated
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::DeadlineExceeded
        | Code::Cancelled => Unreachable::new(&status).into(),
        _ => NetworkError::new(&status).into(),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcError> {
        self.call(Rpc::AppendEntries, &req, Vec::new()).await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        let mut req = req;
        let data = std::mem::take(&mut req.data);
        self.call(Rpc::InstallSnapshot, &req, data).await
    }

    async fn vote(&mut self, req: VoteRequest<u64>, _option: RPCOption) -> Result<VoteResponse<u64>, RpcError> {
        self.call(Rpc::Vote, &req, Vec::new()).await
    }
}

/// The `flotilla.v1.Raft` service of this node.
pub struct RaftService {
    raft: Raft,
    auth: Arc<ClusterAuth>,
    leader_commit: Arc<LeaderCommit>,
}

/// What this node last heard from a leader: the highest commit index any
/// leader has told it about, and when a leader's AppendEntries (a heartbeat
/// or entries) was last accepted.
///
/// Committed entries are never lost, so the index is a lower bound of the
/// cluster's commit index even when the sender was a deposed leader; a node
/// that restarted with an old log learns from it how far behind it is
/// before its own committed index catches up. The time tells a follower
/// whether its primary is alive without asking the primary.
pub(crate) struct LeaderCommit {
    index: std::sync::atomic::AtomicU64,
    /// Milliseconds after `epoch` plus one; 0 = never, or the connection
    /// that carried the leader's messages closed since.
    contact: std::sync::atomic::AtomicU64,
    /// The remote address of that connection.
    conn: parking_lot::Mutex<Option<std::net::SocketAddr>>,
    epoch: std::time::Instant,
}

impl Default for LeaderCommit {
    fn default() -> Self {
        LeaderCommit { index: Default::default(), contact: Default::default(), conn: Default::default(), epoch: std::time::Instant::now() }
    }
}

impl LeaderCommit {
    fn saw(&self, index: u64) {
        self.index.fetch_max(index + 1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<u64> {
        self.index.load(std::sync::atomic::Ordering::Relaxed).checked_sub(1)
    }

    fn heard(&self, conn: Option<std::net::SocketAddr>) {
        let mut current = self.conn.lock();
        *current = conn;
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.contact.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// The connection `peer` closed: if it carried the leader's messages,
    /// the leader is taken as gone until its next message arrives.
    pub(crate) fn connection_closed(&self, peer: std::net::SocketAddr) {
        let mut current = self.conn.lock();
        if *current == Some(peer) {
            *current = None;
            self.contact.store(0, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(%peer, "the connection of the primary's messages closed");
        }
    }

    /// How long ago a leader's AppendEntries was last accepted (`None`:
    /// never, or its connection closed since).
    pub(crate) fn since_contact(&self) -> Option<Duration> {
        let at = self.contact.load(std::sync::atomic::Ordering::Relaxed).checked_sub(1)?;
        Some(self.epoch.elapsed().saturating_sub(Duration::from_millis(at)))
    }
}

impl RaftService {
    pub(crate) fn new(raft: Raft, auth: Arc<ClusterAuth>, leader_commit: Arc<LeaderCommit>) -> Self {
        RaftService { raft, auth, leader_commit }
    }

    async fn handle<Req, Resp, E, F, Fut>(
        &self,
        rpc: &str,
        mut request: Request<RaftRequest>,
        vote: fn(&Req) -> &Vote,
        call: F,
    ) -> Result<Response<RaftReply>, Status>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        E: std::error::Error + Serialize,
        F: FnOnce(Raft, Req, Vec<u8>) -> Fut,
        Fut: Future<Output = Result<Resp, RaftError<u64, E>>>,
    {
        let from = self.auth.admit(&request, request.get_ref().from, rpc)?;
        let req: Req = serde_json::from_slice(&request.get_ref().payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable {rpc} payload: {e}")))?;
        if vote(&req).leader_id().voted_for() != Some(from) {
            tracing::warn!(from, rpc, vote = %vote(&req), "refused raft RPC: sender is not the node its vote names");
            return Err(Status::invalid_argument(format!("{rpc} from node {from} carries another node's vote")));
        }
        let data = std::mem::take(&mut request.get_mut().data);
        let reply = match call(self.raft.clone(), req, data).await {
            Ok(resp) => RaftReply { payload: json(&resp)?, ..RaftReply::default() },
            Err(err) => RaftReply { error: err.to_string(), raft_error: json(&err)?, ..RaftReply::default() },
        };
        Ok(Response::new(reply))
    }
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(value).map_err(|e| Status::internal(format!("encoding raft reply: {e}")))
}

#[tonic::async_trait]
impl proto::Raft for RaftService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let leader_commit = self.leader_commit.clone();
        let conn = request.remote_addr();
        self.handle(
            "AppendEntries",
            request,
            |r: &AppendEntriesRequest<TypeConfig>| &r.vote,
            |raft, r, _| async move {
                if let Some(commit) = r.leader_commit {
                    leader_commit.saw(commit.index);
                }
                let reply = raft.append_entries(r).await;
                // Any answer but "your term is over" means the sender is the
                // leader this node follows.
                if matches!(&reply, Ok(resp) if !matches!(resp, AppendEntriesResponse::HigherVote(_))) {
                    leader_commit.heard(conn);
                }
                reply
            },
        )
        .await
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.handle(
            "Vote",
            request,
            |r: &VoteRequest<u64>| &r.vote,
            |raft, r, _| async move {
                // No raft amnesia: a node whose log is empty (its data dir
                // was wiped, or it never caught up) while the candidate's is
                // not has lost what it acknowledged and voted before; voting
                // now could elect a candidate that lacks committed entries.
                // It abstains until a leader has brought it up to date.
                let (mine, my_vote) = {
                    let metrics = raft.metrics();
                    let m = metrics.borrow();
                    (m.last_log_index.unwrap_or(0), m.vote)
                };
                let theirs = r.last_log_id.map_or(0, |l| l.index);
                if mine == 0 && theirs > 0 {
                    tracing::info!(
                        candidate = %r.vote,
                        "not voting: this node's log is empty but the cluster's is not (wiped data dir?); it votes once it has caught up"
                    );
                    return Ok(VoteResponse::new(my_vote, None, false));
                }
                raft.vote(r).await
            },
        )
        .await
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        self.handle(
            "InstallSnapshot",
            request,
            |r: &InstallSnapshotRequest<TypeConfig>| &r.vote,
            |raft, mut r, data| async move {
                if !data.is_empty() {
                    r.data = data;
                }
                raft.install_snapshot(r).await
            },
        )
        .await
    }

    async fn announce(&self, request: Request<AnnounceRequest>) -> Result<Response<AnnounceReply>, Status> {
        let from = self.auth.admit(&request, request.get_ref().from, "Announce")?;
        let url = request.get_ref().gateway_url.trim().to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > MAX_URL {
            return Err(Status::invalid_argument(format!("gateway URL {url:?} is not an http(s) URL of at most {MAX_URL} bytes")));
        }
        let cmd = Command::AnnounceNode { node_id: from, gateway_url: url.clone() };
        match tokio::time::timeout(ANNOUNCE_TIMEOUT, self.raft.client_write(cmd)).await {
            Err(_) => Err(Status::unavailable(format!("the announcement did not commit within {ANNOUNCE_TIMEOUT:?}; retry"))),
            Ok(Ok(written)) => {
                tracing::info!(node = from, %url, "recorded a member's gateway URL");
                Ok(Response::new(AnnounceReply { index: written.log_id.index }))
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                let primary = forward.leader_id.map_or("unknown".to_owned(), |id| format!("node {id}"));
                Err(Status::failed_precondition(format!("this node is not the primary (primary: {primary})")))
            }
            Ok(Err(e)) => Err(Status::internal(format!("raft failed: {e}"))),
        }
    }
}

const MAX_URL: usize = 2048;
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);
