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

use crate::codec::encoded_len;
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

/// Builds openraft's per-peer clients.
pub(crate) struct Network {
    pub(crate) node_id: u64,
    pub(crate) auth: Arc<ClusterAuth>,
    /// Bytes of entries one AppendEntries carries ([`crate::config::batch_budget`]).
    pub(crate) batch_budget: usize,
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
        PeerClient {
            from: self.node_id,
            target,
            client,
            auth: self.auth.clone(),
            budget: BatchBudget::new(self.batch_budget),
            wire_warned: None,
        }
    }
}

pub(crate) struct PeerClient {
    from: u64,
    target: u64,
    client: Result<RaftClient<Channel>, Arc<Error>>,
    auth: Arc<ClusterAuth>,
    budget: BatchBudget,
    /// When a wire-version refusal was last logged.
    wire_warned: Option<std::time::Instant>,
}

/// The byte budget of AppendEntries to one peer: the configured one, halved
/// (down to [`MIN_ADAPTED_BUDGET`], still at least one entry) each time a
/// batch did not come back within openraft's timeout (a slow link or disk),
/// and doubled back after each batch that did.
struct BatchBudget {
    full: usize,
    now: usize,
    /// A batch was sent and its answer never awaited: openraft dropped the
    /// call at its timeout.
    in_flight: bool,
}

const MIN_ADAPTED_BUDGET: usize = 64 << 10;

impl BatchBudget {
    fn new(full: usize) -> Self {
        BatchBudget { full, now: full, in_flight: false }
    }

    /// The budget for the next batch.
    fn begin(&mut self, target: u64) -> usize {
        if self.in_flight && self.now > MIN_ADAPTED_BUDGET {
            self.now = (self.now / 2).max(MIN_ADAPTED_BUDGET);
            tracing::info!(node = target, budget = self.now, "an AppendEntries batch timed out; smaller batches to this node for now");
        }
        self.in_flight = true;
        self.now
    }

    /// The batch got an answer in time (`ok`: a successful one).
    fn answered(&mut self, ok: bool) {
        self.in_flight = false;
        if ok {
            self.now = self.now.saturating_mul(2).min(self.full);
        }
    }
}

/// Header with the leader's own commit index on AppendEntries: the request's
/// `leader_commit` is clamped to the entries it carries, but a follower's
/// readiness wants to know how far the cluster really is.
const LEADER_COMMIT_HEADER: &str = "x-flotilla-leader-commit";

/// Cuts `req` to the entries that fit `budget` bytes (their encoded size;
/// always at least one) and clamps `leader_commit` to the last entry sent,
/// so the follower never commits past what it received. Returns the last
/// entry sent when the batch was cut (openraft then hears `PartialSuccess`
/// and sends the rest next).
pub(crate) fn trim_batch(req: &mut AppendEntriesRequest<TypeConfig>, budget: usize) -> Option<crate::types::LogId> {
    let mut used = 0usize;
    let mut keep = 0usize;
    for entry in &req.entries {
        let size = encoded_len(entry);
        if keep > 0 && used.saturating_add(size) > budget {
            break;
        }
        used = used.saturating_add(size);
        keep += 1;
    }
    let cut = keep < req.entries.len();
    req.entries.truncate(keep);
    let last = req.entries.last().map(|e| e.log_id)?;
    if req.leader_commit.is_some_and(|commit| commit.index > last.index) {
        req.leader_commit = Some(last);
    }
    cut.then_some(last)
}

#[derive(Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(&mut self, rpc: Rpc, req: &Req, data: Vec<u8>, commit: Option<u64>) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = self.client.clone().map_err(|e| Unreachable::new(&AnyError::error(e)))?;
        let payload = serde_json::to_vec(req).map_err(|e| NetworkError::new(&e))?;
        let mut request = Request::new(RaftRequest { from: self.from, payload, data });
        self.auth.stamp(&mut request);
        if let Some(commit) = commit {
            request.metadata_mut().insert(LEADER_COMMIT_HEADER, AsciiMetadataValue::from(commit));
        }
        let reply = match rpc {
            Rpc::AppendEntries => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = reply
            .map_err(|status| {
                if proto::wire::is_wire_refusal(&status) {
                    self.wire_refused(&status);
                }
                status_error(status)
            })?
            .into_inner();
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

impl PeerClient {
    /// Says clearly, once a minute at most, that `target` speaks another
    /// wire version (openraft keeps retrying, backing off).
    fn wire_refused(&mut self, status: &Status) {
        let now = std::time::Instant::now();
        if self.wire_warned.is_some_and(|at| now.duration_since(at) < Duration::from_secs(60)) {
            return;
        }
        self.wire_warned = Some(now);
        tracing::error!(
            node = self.target,
            reason = status.message(),
            "node {} refuses this node's raft messages: it speaks another cluster wire version; \
             run the same Flotilla release (or one of the same wire version) on every member",
            self.target
        );
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
        let mut req = req;
        let commit = req.leader_commit.map(|c| c.index);
        let budget = self.budget.begin(self.target);
        let cut = trim_batch(&mut req, budget);
        let reply = self.call(Rpc::AppendEntries, &req, Vec::new(), commit).await;
        self.budget.answered(reply.is_ok());
        match (reply?, cut) {
            (AppendEntriesResponse::Success, Some(last)) => Ok(AppendEntriesResponse::PartialSuccess(Some(last))),
            (resp, _) => Ok(resp),
        }
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcError<InstallSnapshotError>> {
        let mut req = req;
        let data = std::mem::take(&mut req.data);
        self.call(Rpc::InstallSnapshot, &req, data, None).await
    }

    async fn vote(&mut self, req: VoteRequest<u64>, _option: RPCOption) -> Result<VoteResponse<u64>, RpcError> {
        self.call(Rpc::Vote, &req, Vec::new(), None).await
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
        let told: Option<u64> = request.metadata().get(LEADER_COMMIT_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        self.handle(
            "AppendEntries",
            request,
            |r: &AppendEntriesRequest<TypeConfig>| &r.vote,
            |raft, r, _| async move {
                if let Some(commit) = r.leader_commit.map(|c| c.index).max(told) {
                    leader_commit.saw(commit);
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

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::{Entry, LogId};

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    /// An entry whose command is about `bytes` long.
    fn entry(index: u64, bytes: usize) -> Entry {
        Entry { log_id: log_id(index), payload: EntryPayload::Normal(Command::AnnounceNode { node_id: 1, gateway_url: "x".repeat(bytes) }) }
    }

    fn request(sizes: &[usize], commit: Option<u64>) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: commit.map(log_id),
            entries: sizes.iter().enumerate().map(|(i, &b)| entry(i as u64 + 1, b)).collect(),
        }
    }

    fn indexes(req: &AppendEntriesRequest<TypeConfig>) -> Vec<u64> {
        req.entries.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn a_batch_is_cut_to_its_byte_budget_and_commits_no_further() {
        const K: usize = 1 << 10;
        let mut req = request(&[400 * K, 400 * K, 400 * K, 400 * K, 400 * K], Some(5));
        assert_eq!(trim_batch(&mut req, 1 << 20), Some(log_id(2)));
        assert_eq!(indexes(&req), [1, 2]);
        assert!(req.entries.iter().map(encoded_len).sum::<usize>() <= 1 << 20);
        assert_eq!(req.leader_commit, Some(log_id(2)), "the follower must not commit entries it did not get");

        // The budget counts the encoded entry, not only its payload.
        let one = encoded_len(&entry(1, 1000));
        assert!(one > 1000);
        let mut req = request(&[1000, 1000, 1000], Some(1));
        assert_eq!(trim_batch(&mut req, 2 * one), Some(log_id(2)));
        assert_eq!(indexes(&req), [1, 2]);
        assert_eq!(req.leader_commit, Some(log_id(1)), "a commit below the batch's end stays");
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_sent_alone() {
        let mut req = request(&[3 << 20, 10, 10], Some(3));
        assert_eq!(trim_batch(&mut req, 1 << 20), Some(log_id(1)));
        assert_eq!(indexes(&req), [1]);
        assert_eq!(req.leader_commit, Some(log_id(1)));

        let mut req = request(&[3 << 20], None);
        assert_eq!(trim_batch(&mut req, 1 << 20), None, "the only entry is sent whole: nothing was cut");
        assert_eq!(indexes(&req), [1]);
        assert_eq!(req.leader_commit, None);
    }

    #[test]
    fn a_batch_within_budget_and_a_heartbeat_are_left_alone() {
        let mut req = request(&[100, 100, 100], Some(9));
        assert_eq!(trim_batch(&mut req, 1 << 20), None);
        assert_eq!(indexes(&req), [1, 2, 3]);
        assert_eq!(req.leader_commit, Some(log_id(3)), "clamped to the last entry sent");

        let mut heartbeat = request(&[], Some(9));
        assert_eq!(trim_batch(&mut heartbeat, 1 << 20), None);
        assert_eq!(heartbeat.leader_commit, Some(log_id(9)), "a heartbeat tells the whole commit");
    }

    #[test]
    fn a_call_of_another_wire_version_is_refused_before_its_body() {
        let peers = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        let auth = ClusterAuth::new("secret", "cluster", peers, Transport::Plaintext).unwrap();
        let stamped = || {
            let mut request = Request::new(());
            auth.stamp(&mut request);
            request
        };
        let request = stamped();
        assert_eq!(request.metadata().get(proto::wire::WIRE_HEADER).unwrap(), "1");
        auth.intercept(request, "Raft").unwrap();
        let mut unmarked = stamped();
        unmarked.metadata_mut().remove(proto::wire::WIRE_HEADER);
        auth.intercept(unmarked, "Raft").expect("nodes from before the header speak version 1");

        let mut newer = stamped();
        newer.metadata_mut().insert(proto::wire::WIRE_HEADER, "99".parse().unwrap());
        let refused = auth.intercept(newer, "Raft").unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert!(refused.message().contains("version 99") && refused.message().contains("version 1"), "{}", refused.message());
        assert!(proto::wire::is_wire_refusal(&refused));
        // The sender backs off (openraft's Unreachable) instead of retrying at once.
        assert!(matches!(status_error::<openraft::error::Infallible>(refused), RPCError::Unreachable(_)));
    }

    #[test]
    fn the_budget_halves_after_a_timeout_and_recovers_after_answers() {
        let mut budget = BatchBudget::new(2 << 20);
        assert_eq!(budget.begin(2), 2 << 20);
        budget.answered(true);
        assert_eq!(budget.begin(2), 2 << 20);
        // Dropped by openraft's timeout: never answered.
        assert_eq!(budget.begin(2), 1 << 20);
        assert_eq!(budget.begin(2), 512 << 10);
        budget.answered(false);
        assert_eq!(budget.begin(2), 512 << 10, "an error answer is no timeout");
        budget.answered(true);
        assert_eq!(budget.begin(2), 1 << 20);
        budget.answered(true);
        budget.answered(true);
        assert_eq!(budget.begin(2), 2 << 20, "never above the configured budget");
        for _ in 0..20 {
            budget.begin(2);
        }
        assert_eq!(budget.begin(2), MIN_ADAPTED_BUDGET);
    }
}
