//! The `flotilla.v1.Admin` service on the cluster port: what `flotillactl`
//! talks to. Calls are checked against the admin token; calls that change
//! the catalog are committed by the primary, so a follower passes them on.

use std::time::Duration;

use gomod::{ModulePath, Version};
use proto::{AdminClient, PurgeReply, PurgeRequest};
use raft::{Command, ControlPlane, ProposeError};
use store::{Catalog, CatalogOp};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

const AUTHORIZATION: &str = "authorization";
/// Marks a call a follower passed on to the primary, so it is never passed on twice.
const FORWARDED: &str = "x-flotilla-forwarded-by";
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AdminService {
    control: ControlPlane,
    catalog: Catalog,
    /// `None`: no `admin.token_file`, every call is refused.
    token: Option<String>,
    leader_wait: Duration,
    purge_grace: Duration,
}

impl AdminService {
    pub fn new(control: ControlPlane, catalog: Catalog, token: Option<String>, leader_wait: Duration, purge_grace: Duration) -> Self {
        AdminService { control, catalog, token, leader_wait, purge_grace }
    }

    /// Admin requests are small: a larger one is refused unread.
    pub fn server(self) -> proto::AdminServer<Self> {
        proto::AdminServer::new(self).max_decoding_message_size(64 << 10)
    }

    fn admit<T>(&self, request: &Request<T>, rpc: &str) -> Result<(), Status> {
        let me = self.control.node_id();
        let Some(token) = &self.token else {
            return Err(Status::failed_precondition(format!(
                "the admin API is disabled on node {me}: set admin.token_file (FLOTILLA_ADMIN__TOKEN_FILE) on every node"
            )));
        };
        let given = request.metadata().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes()))) {
            let remote = request.remote_addr().map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
            tracing::warn!(%remote, rpc, "refused admin RPC: wrong admin token (or none)");
            return Err(Status::unauthenticated(
                "wrong admin token (or none): use the content of the nodes' admin.token_file (FLOTILLA_ADMIN_TOKEN for flotillactl)",
            ));
        }
        Ok(())
    }

    /// Waits for a primary; `Ok(None)` when it is this node, else the
    /// primary's id and cluster address.
    async fn primary(&self, metadata: &MetadataMap) -> Result<Option<(u64, String)>, Status> {
        let me = self.control.node_id();
        let Some(leader) = self.control.wait_for_leader(self.leader_wait).await else {
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
        let addr =
            self.control.peer_addr(leader).ok_or_else(|| Status::internal(format!("primary {leader} is not among cluster.peers")))?;
        Ok(Some((leader, addr)))
    }
}

fn parse_target(req: &PurgeRequest) -> Result<(ModulePath, Version), Status> {
    let module = ModulePath::new(req.module.trim()).map_err(|e| Status::invalid_argument(format!("module {:?}: {e}", req.module)))?;
    let version = Version::new(req.version.trim()).map_err(|e| Status::invalid_argument(format!("version {:?}: {e}", req.version)))?;
    Ok((module, version))
}

/// Passes a call on to the primary with the caller's token.
async fn forward(
    control: &ControlPlane,
    leader: u64,
    addr: &str,
    metadata: &MetadataMap,
    req: PurgeRequest,
) -> Result<Response<PurgeReply>, Status> {
    let me = control.node_id();
    let unreachable =
        |e: &dyn std::fmt::Display| Status::unavailable(format!("cannot reach the primary, node {leader} at {addr}: {e}; retry"));
    let endpoint = control.auth().endpoint(leader, addr).map_err(|e| unreachable(&e))?.timeout(FORWARD_TIMEOUT);
    let channel = endpoint.connect().await.map_err(|e| unreachable(&e))?;
    let mut request = Request::new(req);
    if let Some(auth) = metadata.get(AUTHORIZATION) {
        request.metadata_mut().insert(AUTHORIZATION, auth.clone());
    }
    request.metadata_mut().insert(FORWARDED, tonic::metadata::AsciiMetadataValue::from(me));
    AdminClient::new(channel).purge(request).await
}

#[tonic::async_trait]
impl proto::Admin for AdminService {
    async fn purge(&self, request: Request<PurgeRequest>) -> Result<Response<PurgeReply>, Status> {
        self.admit(&request, "Purge")?;
        let (module, version) = parse_target(request.get_ref())?;
        let me = self.control.node_id();
        if let Some((leader, addr)) = self.primary(request.metadata()).await? {
            tracing::info!(%module, %version, primary = leader, "passing a purge on to the primary");
            let metadata = request.metadata().clone();
            return forward(&self.control, leader, &addr, &metadata, request.into_inner()).await;
        }
        let held = |r: Result<bool, store::Error>| r.map_err(|e| Status::internal(format!("reading the catalog: {e}")));
        let zip = self.catalog.zip(&module, &version).map_err(|e| Status::internal(format!("reading the catalog: {e}")))?;
        let info = held(self.catalog.info(&module, &version).map(|v| v.is_some()))?;
        let go_mod = held(self.catalog.go_mod(&module, &version).map(|v| v.is_some()))?;
        if zip.is_none() && !info && !go_mod {
            return Err(Status::not_found(format!("{module}@{version} is not in the catalog; nothing to purge")));
        }
        let op = CatalogOp::Purge { module: module.clone(), version: version.clone() };
        let index = self.control.propose(Command::Catalog(op), COMMIT_TIMEOUT).await.map_err(|e| match e {
            ProposeError::NotLeader { leader } => Status::unavailable(format!(
                "node {me} stopped being the primary before the purge committed (primary now: {}); retry",
                leader.map_or("unknown".into(), |id| format!("node {id}"))
            )),
            ProposeError::Timeout => {
                Status::unavailable(format!("the purge did not commit within {COMMIT_TIMEOUT:?}: no majority reachable; retry"))
            }
            ProposeError::Fatal(e) => Status::internal(format!("raft failed: {e}")),
        })?;
        let zip_sha256 = zip.map(|z| z.sha256).unwrap_or_default();
        tracing::info!(%module, %version, blob = %zip_sha256, index, "purged a module version from the catalog");
        Ok(Response::new(PurgeReply { zip_sha256, index, primary: me, grace_seconds: self.purge_grace.as_secs() }))
    }
}
