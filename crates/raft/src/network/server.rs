//! The server side: the `flotilla.v1.Raft` service of this node, which
//! hands incoming RPCs to the local raft, and what it learns from leaders.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest, VoteResponse};
use proto::{AnnounceReply, AnnounceRequest, RaftReply, RaftRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::{ClusterAuth, LEADER_COMMIT_HEADER};
use crate::types::{Command, Raft, TypeConfig, Vote};

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
