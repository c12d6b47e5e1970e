//! The client side: openraft's per-peer clients, which send raft RPCs
//! over tonic with this cluster's credentials.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::AnyError;
use proto::{RaftClient, RaftRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::batch::{trim_batch, BatchBudget};
use super::{ClusterAuth, LEADER_COMMIT_HEADER, MAX_MESSAGE_SIZE};
use crate::types::{ClusterNode, TypeConfig};
use crate::Error;

type RpcError<E = openraft::error::Infallible> = RPCError<u64, ClusterNode, RaftError<u64, E>>;

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
        let addr = self.auth.configured_addr(target).cloned().unwrap_or_else(|| node.addr.clone());
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
pub(super) fn status_error<E: std::error::Error>(status: Status) -> RpcError<E> {
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
