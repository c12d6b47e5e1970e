//! The `flotilla.v1.Admin` service on the cluster port (a single node: on
//! `admin.listen`): what `flotillactl` talks to. Calls are checked against the admin tokens (`tokens`); calls
//! that change the catalog are committed by the primary, so a follower
//! passes them on, and the primary records each in the audit log (through
//! raft). Read calls are answered by the node asked: `status` (this node and
//! the cluster as it sees it), `modules` (its catalog), the audit log. A
//! single node ([`Node::Single`]) is its own primary and whole cluster.

mod doctor;
mod members;
mod modules;
mod peer;
mod status;
mod sumdb;
mod tokens;
mod verify;

use peer::{forward, lost_answer, passed_on, peer_client, primary_client, PeerError};
pub use tokens::{TokenFile, Tokens, TokensError};

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gomod::{ModulePath, Version};
use proto::tls::Transport;
use proto::v1::{
    AuditEntry, AuditReply, AuditRequest, CheckSumdbReply, CheckSumdbRequest, CheckUpstreamReply, CheckUpstreamRequest, ClusterStatusReply,
    ClusterStatusRequest, ListModulesReply, ListModulesRequest, NodeStatusReply, NodeStatusRequest, NodeVerifyReport, ShowModuleReply,
    ShowModuleRequest, VerifyReply, VerifyRequest, VerifySumdbReply, VerifySumdbRequest,
};
use proto::{PurgeReply, PurgeRequest};
use raft::{AuditRecord, Command, ControlPlane};
use replicator::Replicator;
use store::{Catalog, CatalogOp, Store};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::commit::{admin_status, COMMIT_TIMEOUT};

const AUTHORIZATION: &str = "authorization";
/// Marks a call a follower passed on to the primary, so it is never passed on twice.
const FORWARDED: &str = "x-flotilla-forwarded-by";
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin service acts through.
pub enum Node {
    /// A cluster member: raft and the blob replicator.
    Cluster { control: ControlPlane, replicator: Replicator },
    /// A single node, serving the admin API on `listen` (`admin.listen`).
    Single { node_id: u64, listen: String },
}

/// The node's gateway state, set once it exists (after the admin API
/// starts): the checksum database machinery lives there.
pub type GatewaySlot = Arc<OnceLock<Arc<gateway::AppState>>>;

/// What the admin service reads and acts on.
pub struct AdminParts {
    pub node: Node,
    pub store: Arc<Store>,
    /// This node's upstream client, for `CheckUpstream`.
    pub upstream: upstream::Upstream,
    pub gateway: GatewaySlot,
    /// `None`: no `admin.token_file`, every call is refused.
    pub tokens: Option<TokenFile>,
    pub leader_wait: Duration,
    pub purge_grace: Duration,
    /// This node's gateway URL (`gateway.advertise_url`).
    pub advertise_url: String,
    /// This node's background workers, for `NodeStatus`.
    pub workers: background::Workers,
}

pub struct AdminService {
    node: Node,
    catalog: Catalog,
    store: Arc<Store>,
    upstream: upstream::Upstream,
    gateway: GatewaySlot,
    tokens: Option<TokenFile>,
    leader_wait: Duration,
    purge_grace: Duration,
    advertise_url: String,
    workers: background::Workers,
    started: Instant,
}

impl AdminService {
    pub fn new(parts: AdminParts) -> Self {
        let AdminParts { node, store, upstream, gateway, tokens, leader_wait, purge_grace, advertise_url, workers } = parts;
        let catalog = store.catalog.clone();
        let started = Instant::now();
        AdminService { node, catalog, store, upstream, gateway, tokens, leader_wait, purge_grace, advertise_url, workers, started }
    }

    fn me(&self) -> u64 {
        match &self.node {
            Node::Cluster { control, .. } => control.node_id(),
            Node::Single { node_id, .. } => *node_id,
        }
    }

    pub fn server(self) -> proto::AdminServer<Self> {
        // Admin requests are small: a larger one is refused unread.
        proto::AdminServer::new(self).max_decoding_message_size(64 << 10)
    }

    /// How this node reaches its peers' cluster ports (mutual TLS or plaintext).
    fn transport(&self) -> Transport {
        match &self.node {
            Node::Cluster { control, .. } => control.auth().transport().clone(),
            Node::Single { .. } => Transport::Plaintext,
        }
    }

    /// Checks the caller's token; answers its name.
    fn admit<T>(&self, request: &Request<T>, rpc: &str) -> Result<String, Status> {
        let me = self.me();
        proto::wire::check(request.metadata())?;
        let Some(tokens) = &self.tokens else {
            return Err(Status::failed_precondition(format!(
                "the admin API is disabled on node {me}: set admin.token_file (FLOTILLA_ADMIN__TOKEN_FILE) on every node"
            )));
        };
        let given = request.metadata().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given.and_then(|given| tokens.who(given)) {
            Some(name) => Ok(name),
            None => {
                let remote = request.remote_addr().map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
                tracing::warn!(%remote, rpc, "refused admin RPC: wrong admin token (or none)");
                Err(Status::unauthenticated(
                    "wrong admin token (or none): use one of the tokens of the nodes' admin.token_file \
                     (FLOTILLA_ADMIN_TOKEN for flotillactl)",
                ))
            }
        }
    }

    /// Records an admin call in the audit log (through raft on a cluster).
    /// Best effort: a record that cannot be committed is logged here instead.
    async fn record_audit(&self, who: &str, metadata: &MetadataMap, action: &str, target: &str, result: &str) {
        let me = self.me();
        let via = metadata.get(FORWARDED).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(me);
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let record =
            AuditRecord { who: who.into(), action: action.into(), target: target.into(), at_ms, result: result.into(), via, index: 0 };
        tracing::info!(who, action, target, result, via, "admin call");
        let recorded = match &self.node {
            Node::Cluster { control, .. } => {
                control.propose(Command::Audit(record), COMMIT_TIMEOUT).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Node::Single { .. } => store::append_audit(self.catalog.db(), &record).map(|_| ()).map_err(|e| e.to_string()),
        };
        if let Err(e) = recorded {
            tracing::warn!(who, action, target, result, error = %e, "could not record an admin call in the audit log");
        }
    }

    /// Waits for a primary; `Ok(None)` when it is this node, else the
    /// primary's id and cluster address.
    async fn primary(&self, metadata: &MetadataMap) -> Result<Option<(u64, String)>, Status> {
        let Node::Cluster { control, .. } = &self.node else { return Ok(None) };
        let me = control.node_id();
        let Some(leader) = control.wait_for_leader(self.leader_wait).await else {
            return Err(Status::unavailable(format!(
                "no primary elected within {:?} (is a majority of the nodes up?); retry",
                self.leader_wait
            )));
        };
        if leader == me {
            return Ok(None);
        }
        if let Some(by) = metadata.get(FORWARDED) {
            let by = by.to_str().unwrap_or("?");
            return Err(Status::unavailable(format!(
                "node {by} passed this call on to node {me}, which is not the primary either (primary: node {leader}); retry"
            )));
        }
        let addr = control
            .peer_addr(leader)
            .ok_or_else(|| Status::internal(format!("no cluster address known for the primary, node {leader}")))?;
        Ok(Some((leader, addr)))
    }
}

fn parse_target(req: &PurgeRequest) -> Result<(ModulePath, Version), Status> {
    let module = ModulePath::new(req.module.trim()).map_err(|e| Status::invalid_argument(format!("module {:?}: {e}", req.module)))?;
    let version = Version::new(req.version.trim()).map_err(|e| Status::invalid_argument(format!("version {:?}: {e}", req.version)))?;
    Ok((module, version))
}

impl AdminService {
    /// Purges a version on the primary (this node).
    async fn purge_here(&self, module: &ModulePath, version: &Version) -> Result<PurgeReply, Status> {
        let me = self.me();
        let zip = self.catalog.zip(module, version).map_err(catalog_error)?;
        let info = self.catalog.info(module, version).map_err(catalog_error)?.is_some();
        let go_mod = self.catalog.go_mod(module, version).map_err(catalog_error)?.is_some();
        if zip.is_none() && !info && !go_mod {
            return Err(Status::not_found(format!("{module}@{version} is not in the catalog; nothing to purge")));
        }
        let op = CatalogOp::Purge { module: module.clone(), version: version.clone() };
        let Node::Cluster { control, .. } = &self.node else {
            // A single node keeps the blob (it has no garbage collection):
            // the version fetched again reuses it.
            self.catalog.apply(&op).map_err(|e| Status::internal(format!("writing the catalog: {e}")))?;
            tracing::info!(%module, %version, "purged a module version from the catalog");
            let zip_sha256 = zip.map(|z| z.sha256.to_hex()).unwrap_or_default();
            return Ok(PurgeReply { zip_sha256, index: 0, primary: me, grace_seconds: 0 });
        };
        // The entry may still commit after either error, so the caller must
        // not take "not committed" for "not done".
        let index = control.propose(Command::Catalog(op), COMMIT_TIMEOUT).await.map_err(|e| admin_status(e, me, "the purge", ""))?;
        let zip_sha256 = zip.map(|z| z.sha256.to_hex()).unwrap_or_default();
        tracing::info!(%module, %version, blob = %zip_sha256, index, "purged a module version from the catalog");
        Ok(PurgeReply { zip_sha256, index, primary: me, grace_seconds: self.purge_grace.as_secs() })
    }
}

fn catalog_error(e: store::Error) -> Status {
    Status::internal(format!("reading the catalog: {e}"))
}

#[tonic::async_trait]
impl proto::Admin for AdminService {
    async fn purge(&self, request: Request<PurgeRequest>) -> Result<Response<PurgeReply>, Status> {
        let who = self.admit(&request, "Purge")?;
        let (module, version) = parse_target(request.get_ref())?;
        let me = self.me();
        if let Some((leader, addr)) = self.primary(request.metadata()).await? {
            tracing::info!(%module, %version, primary = leader, "passing a purge on to the primary");
            let metadata = request.metadata().clone();
            return forward(&self.transport(), me, leader, &addr, &metadata, request.into_inner()).await;
        }
        let target = format!("{module}@{version}");
        let outcome = self.purge_here(&module, &version).await;
        let result = match &outcome {
            Ok(reply) if reply.index == 0 => "ok".to_string(),
            Ok(reply) => format!("ok (raft index {})", reply.index),
            Err(status) => status.message().to_string(),
        };
        self.record_audit(&who, request.metadata(), "purge", &target, &result).await;
        outcome.map(Response::new)
    }

    async fn verify(&self, request: Request<VerifyRequest>) -> Result<Response<VerifyReply>, Status> {
        let who = self.admit(&request, "Verify")?;
        if let Some((leader, addr)) = self.primary(request.metadata()).await? {
            let me = self.me();
            let mut client = primary_client(&self.transport(), leader, &addr, verify::VERIFY_TIMEOUT).await?;
            return client.verify(passed_on(me, request.metadata(), VerifyRequest {})).await;
        }
        let reply = self.verify_all(request.metadata()).await;
        self.record_audit(&who, request.metadata(), "verify", "all blobs", &verify::summary(&reply)).await;
        Ok(Response::new(reply))
    }

    async fn check_upstream(&self, request: Request<CheckUpstreamRequest>) -> Result<Response<CheckUpstreamReply>, Status> {
        self.admit(&request, "CheckUpstream")?;
        Ok(Response::new(self.check_upstream(request.get_ref(), request.metadata()).await))
    }

    async fn verify_node(&self, request: Request<VerifyRequest>) -> Result<Response<NodeVerifyReport>, Status> {
        self.admit(&request, "VerifyNode")?;
        self.verify_here().await.map(Response::new)
    }

    async fn verify_sumdb(&self, request: Request<VerifySumdbRequest>) -> Result<Response<VerifySumdbReply>, Status> {
        let who = self.admit(&request, "VerifySumdb")?;
        if let Some((leader, addr)) = self.primary(request.metadata()).await? {
            let me = self.me();
            let mut client = primary_client(&self.transport(), leader, &addr, sumdb::VERIFY_SUMDB_TIMEOUT).await?;
            return client.verify_sumdb(passed_on(me, request.metadata(), VerifySumdbRequest {})).await;
        }
        // Refused before it started (no database, the node starting): nothing to record.
        let reply = self.verify_sumdb_here().await?;
        self.record_audit(&who, request.metadata(), "verify-sumdb", "all cached versions", &sumdb::summary(&reply)).await;
        Ok(Response::new(reply))
    }

    async fn check_sumdb(&self, request: Request<CheckSumdbRequest>) -> Result<Response<CheckSumdbReply>, Status> {
        self.admit(&request, "CheckSumdb")?;
        if let Some((leader, addr)) = self.primary(request.metadata()).await? {
            let me = self.me();
            let mut client = primary_client(&self.transport(), leader, &addr, sumdb::CHECK_SUMDB_TIMEOUT).await?;
            return client.check_sumdb(passed_on(me, request.metadata(), CheckSumdbRequest {})).await;
        }
        self.check_sumdb_here().await.map(Response::new)
    }

    async fn audit(&self, request: Request<AuditRequest>) -> Result<Response<AuditReply>, Status> {
        self.admit(&request, "Audit")?;
        let limit = match request.get_ref().limit {
            0 => 100,
            n => n as usize,
        };
        let records = store::read_audit(self.catalog.db(), limit).map_err(catalog_error)?;
        let entries = records
            .into_iter()
            .map(|r| AuditEntry {
                index: r.index,
                at_ms: r.at_ms,
                who: r.who,
                action: r.action,
                target: r.target,
                result: r.result,
                via: r.via,
            })
            .collect();
        Ok(Response::new(AuditReply { entries }))
    }

    async fn change_members(
        &self,
        request: Request<proto::v1::ChangeMembersRequest>,
    ) -> Result<Response<proto::v1::ChangeMembersReply>, Status> {
        let who = self.admit(&request, "ChangeMembers")?;
        let change = members::Change::parse(request.get_ref())?;
        if let Some((leader, addr)) = self.primary(request.metadata()).await? {
            tracing::info!(change = %change, primary = leader, "passing a membership change on to the primary");
            let me = self.me();
            let mut client = primary_client(&self.transport(), leader, &addr, FORWARD_TIMEOUT).await?;
            let metadata = request.metadata().clone();
            return client
                .change_members(passed_on(me, &metadata, request.into_inner()))
                .await
                .map_err(|status| lost_answer(status, leader));
        }
        let outcome = self.change_here(&change).await;
        let result = match &outcome {
            Ok(reply) => format!("ok (raft index {})", reply.index),
            Err(status) => status.message().to_string(),
        };
        self.record_audit(&who, request.metadata(), &format!("members {}", change.action()), &change.target(), &result).await;
        outcome.map(Response::new)
    }

    async fn node_status(&self, request: Request<NodeStatusRequest>) -> Result<Response<NodeStatusReply>, Status> {
        self.admit(&request, "NodeStatus")?;
        Ok(Response::new(self.local_status()))
    }

    async fn cluster_status(&self, request: Request<ClusterStatusRequest>) -> Result<Response<ClusterStatusReply>, Status> {
        self.admit(&request, "ClusterStatus")?;
        Ok(Response::new(self.cluster(request.metadata()).await))
    }

    async fn list_modules(&self, request: Request<ListModulesRequest>) -> Result<Response<ListModulesReply>, Status> {
        self.admit(&request, "ListModules")?;
        self.list(request.get_ref()).map(Response::new)
    }

    async fn show_module(&self, request: Request<ShowModuleRequest>) -> Result<Response<ShowModuleReply>, Status> {
        self.admit(&request, "ShowModule")?;
        self.show(request.get_ref()).map(Response::new)
    }
}
