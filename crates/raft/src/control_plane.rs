//! The facade the rest of Flotilla uses: start raft on the node's database,
//! propose commands, and watch who leads. No other crate sees openraft.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, RaftMetrics};
use proto::{AnnounceRequest, RaftClient};
use store::Sha256;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;

use crate::log_store::LogStore;
use crate::network::{ClusterAuth, LeaderCommit, Network, RaftService, MAX_MESSAGE_SIZE};
use crate::peer_conn::PeerConn;
use crate::state_machine::StateMachine;
use crate::types::{Applied, ClusterNode, Command, Raft, StateEvent};
use crate::{Error, ProposeError, RaftConfig, RaftStatus};

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(5);

/// A running raft node. Cheap to clone; all clones drive the same node.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RaftConfig,
    raft: Raft,
    auth: Arc<ClusterAuth>,
    state: StateMachine,
    observer: Arc<Observer>,
    status: watch::Receiver<RaftStatus>,
    leader_commit: Arc<LeaderCommit>,
}

impl ControlPlane {
    /// Opens the raft log and state machine in `db`, starts raft and, on a
    /// node that has never been initialized, bootstraps the membership
    /// derived from `cfg.peers` (identical on every node, so all may do it).
    ///
    /// Fails without changing anything if `db` belongs to another cluster id.
    pub async fn start(cfg: RaftConfig, db: store::Db) -> Result<Self, Error> {
        cfg.validate()?;
        let openraft_config = Arc::new(cfg.openraft_config()?);
        let auth = Arc::new(ClusterAuth::new(&cfg.secret, &cfg.cluster_id, cfg.peers.clone(), cfg.transport.clone())?);
        let log = LogStore::new(db.clone());
        log.claim_cluster(&cfg.cluster_id)?;
        let state = StateMachine::open(db).map_err(|e| Error::Start(format!("opening the catalog state machine: {e}")))?;

        let network =
            Network { node_id: cfg.node_id, auth: auth.clone(), batch_budget: crate::config::batch_budget(cfg.settings.heartbeat) };
        let raft =
            Raft::new(cfg.node_id, openraft_config, network, log.clone(), state.clone()).await.map_err(|e| Error::Start(e.to_string()))?;
        if cfg.join {
            tracing::info!(
                node_id = cfg.node_id,
                "cluster.join: not bootstrapping; waiting for the primary to add this node (`flotillactl members add`)"
            );
        } else {
            bootstrap(&raft, &cfg).await?;
        }

        let observer = Arc::new(Observer { log, quorum_acked_at: Mutex::new(None), stopped: AtomicBool::new(false) });
        let metrics = raft.metrics();
        let first = observer.observe(&metrics.borrow());
        auth.set_members(membership_ids(&metrics.borrow()));
        let (tx, status) = watch::channel(first);
        let lease_ms = cfg.settings.election_timeout_max.as_millis() as u64;
        tokio::spawn(publish_status(metrics, tx, observer.clone(), auth.clone(), cfg.settings.heartbeat, lease_ms));
        tracing::info!(node_id = cfg.node_id, peers = ?cfg.peers, "raft control plane started");
        let leader_commit = Arc::new(LeaderCommit::default());
        Ok(ControlPlane { inner: Arc::new(Inner { cfg, raft, auth, state, observer, status, leader_commit }) })
    }

    /// The credentials this node stamps on, and checks on, cluster RPCs.
    pub fn auth(&self) -> Arc<ClusterAuth> {
        self.inner.auth.clone()
    }

    /// Events of log entries applied from now on (zips referenced, placement
    /// changed, zips purged, snapshot installed), for the blob replicator.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StateEvent> {
        self.inner.state.subscribe()
    }

    /// Nodes recorded (through raft) as holding blob `sha256`, ascending.
    pub fn placement(&self, sha256: &Sha256) -> Vec<u64> {
        self.inner.state.placement(sha256).unwrap_or_else(|e| {
            tracing::warn!(blob = %sha256, error = %e, "reading blob placement failed");
            Vec::new()
        })
    }

    /// Every placement record: (blob sha256, node id).
    pub fn placements(&self) -> Vec<(Sha256, u64)> {
        self.inner.state.placements().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading blob placement failed");
            Vec::new()
        })
    }

    /// Calls `visit` with every placement record (blob sha256, node id), in
    /// ascending sha256 order, without collecting them.
    pub fn for_each_placement(&self, visit: impl FnMut(Sha256, u64)) -> Result<(), store::Error> {
        self.inner.state.for_each_placement(visit)
    }

    /// The last `limit` records of the audit log, oldest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<crate::AuditRecord>, store::Error> {
        self.inner.state.audit(limit)
    }

    /// The raft membership as this node knows it: every member's id, cluster
    /// address, and whether it votes (else it is a learner).
    pub fn membership(&self) -> Vec<(u64, String, bool)> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership.nodes().map(|(id, node)| (*id, node.addr.clone(), voters.contains(id))).collect()
    }

    /// How `cluster.peers` differs from the raft membership, which is what
    /// counts once the cluster has formed; `None` when they agree (or the
    /// membership is not known yet).
    pub fn peers_drift(&self) -> Option<String> {
        let membership: BTreeMap<u64, String> = self.membership().into_iter().map(|(id, addr, _)| (id, addr)).collect();
        if membership.is_empty() || membership == self.inner.cfg.peers {
            return None;
        }
        let list = |m: &BTreeMap<u64, String>| m.iter().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(", ");
        Some(format!(
            "cluster.peers ({}) differs from the raft membership ({}); the membership is what counts and editing cluster.peers \
             does not change it: `flotillactl members list` shows it (use the same cluster.peers on every node)",
            list(&self.inner.cfg.peers),
            list(&membership)
        ))
    }

    /// Ids of every cluster member, voters and learners: the raft
    /// membership once known (`cluster.peers` before, on a joining node).
    pub fn members(&self) -> Vec<u64> {
        self.inner.auth.members()
    }

    /// Ids of this node's `cluster.peers`.
    pub fn configured_peers(&self) -> Vec<u64> {
        self.inner.cfg.peers.keys().copied().collect()
    }

    /// Adds `node_id` at cluster address `addr` as a learner: it receives
    /// the log (and the blobs) but does not vote. Only on the primary.
    pub async fn add_learner(&self, node_id: u64, addr: &str) -> Result<u64, ProposeError> {
        let node = ClusterNode { addr: addr.to_owned(), gateway_url: String::new() };
        let change = self.inner.raft.add_learner(node_id, node, false);
        membership_result(tokio::time::timeout(MEMBERSHIP_TIMEOUT, change).await)
    }

    /// Makes learner `node_id` a voter. Only on the primary.
    pub async fn promote(&self, node_id: u64) -> Result<u64, ProposeError> {
        let change = self.inner.raft.change_membership(ChangeMembers::AddVoterIds([node_id].into()), false);
        membership_result(tokio::time::timeout(MEMBERSHIP_TIMEOUT, change).await)
    }

    /// Removes `node_id` (a voter or a learner) from the membership. Only
    /// on the primary; the caller checks it is not the last voter.
    pub async fn remove_member(&self, node_id: u64) -> Result<u64, ProposeError> {
        let voter = self.membership().iter().any(|(id, _, voter)| *id == node_id && *voter);
        let change: ChangeMembers<u64, ClusterNode> =
            if voter { ChangeMembers::RemoveVoters([node_id].into()) } else { ChangeMembers::RemoveNodes([node_id].into()) };
        let change = self.inner.raft.change_membership(change, false);
        membership_result(tokio::time::timeout(MEMBERSHIP_TIMEOUT, change).await)
    }

    /// The `flotilla.v1.Raft` gRPC service, to mount on the cluster port.
    /// Callers are authenticated on their headers and certificate before a
    /// message (up to 64 MiB: AppendEntries batches, snapshot chunks) is read.
    pub fn service(&self) -> InterceptedService<proto::RaftServer<impl proto::Raft>, impl Interceptor + Clone> {
        let server =
            proto::RaftServer::new(RaftService::new(self.inner.raft.clone(), self.inner.auth.clone(), self.inner.leader_commit.clone()))
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let auth = self.inner.auth.clone();
        InterceptedService::new(server, move |request| auth.intercept(request, "Raft"))
    }

    /// Proposes `cmd` and waits until a majority has committed it; returns
    /// its log index. Only the leader can propose. A proposal that timed
    /// out may still be committed later (commands are idempotent).
    pub async fn propose(&self, cmd: Command, timeout: Duration) -> Result<u64, ProposeError> {
        self.write(cmd, timeout).await.map(|applied| applied.index)
    }

    /// [`ControlPlane::propose`], answering with what applying the entry
    /// did (its index, and the parts of a version it left as recorded).
    pub async fn write(&self, cmd: Command, timeout: Duration) -> Result<Applied, ProposeError> {
        // One place decides what is too big for the log: an entry must fit
        // in one AppendEntries (see `MAX_COMMAND_BYTES`).
        let bytes = crate::codec::encoded_len(&cmd);
        if bytes > crate::MAX_COMMAND_BYTES {
            return Err(ProposeError::TooLarge { bytes, limit: crate::MAX_COMMAND_BYTES });
        }
        // openraft 0.9's client_write waits forever on a leader cut off from
        // the majority, hence the timeout.
        match tokio::time::timeout(timeout, self.inner.raft.client_write(cmd)).await {
            Err(_) => Err(ProposeError::Timeout),
            Ok(Ok(written)) => Ok(written.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                Err(ProposeError::NotLeader { leader: forward.leader_id })
            }
            Ok(Err(e)) => Err(ProposeError::Fatal(e.to_string())),
        }
    }

    /// Records `gateway_url` as this node's advertised gateway through raft:
    /// proposed here on the primary, sent to the primary (`Announce`) on a
    /// follower. Returns the log index of the committed announcement.
    pub async fn announce(&self, gateway_url: &str) -> Result<u64, Error> {
        let me = self.node_id();
        let leader = self.leader().ok_or(Error::NoPrimary)?;
        if leader == me {
            let cmd = Command::AnnounceNode { node_id: me, gateway_url: gateway_url.to_owned() };
            return Ok(self.propose(cmd, ANNOUNCE_TIMEOUT).await?);
        }
        let addr = self.peer_addr(leader).ok_or(Error::UnknownPrimary(leader))?;
        let endpoint =
            self.inner.auth.endpoint(leader, &addr).map_err(|e| Error::BadAddress { addr: addr.clone(), reason: e.to_string() })?;
        let channel = endpoint.timeout(ANNOUNCE_TIMEOUT * 2).connect().await.map_err(|e| Error::Unreachable {
            node: leader,
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        let mut request = tonic::Request::new(AnnounceRequest { from: me, gateway_url: gateway_url.to_owned() });
        self.inner.auth.stamp(&mut request);
        let reply = RaftClient::new(channel)
            .announce(request)
            .await
            .map_err(|s| Error::Refused { node: leader, message: s.message().to_owned() })?;
        Ok(reply.into_inner().index)
    }

    /// Every member's configured cluster address and announced gateway URL.
    pub fn member_addresses(&self) -> Vec<(u64, String, Option<String>)> {
        self.members().into_iter().filter_map(|id| Some((id, self.peer_addr(id)?, self.gateway_url(id)))).collect()
    }

    /// The current status, with a fresh `millis_since_quorum_ack`.
    pub fn status(&self) -> RaftStatus {
        self.inner.observer.current(&self.inner.raft.metrics().borrow())
    }

    /// Status updates: a new value whenever something other than the age of
    /// the last quorum ack changes, and when this node starts or stops
    /// acting as primary.
    pub fn watch(&self) -> watch::Receiver<RaftStatus> {
        self.inner.status.clone()
    }

    pub fn node_id(&self) -> u64 {
        self.inner.cfg.node_id
    }

    pub fn leader(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Leader, and acknowledged by a quorum within `election_timeout_max`:
    /// a leader cut off from the majority stops acting as primary by itself,
    /// about when the others elect a new one.
    pub fn is_acting_primary(&self) -> bool {
        self.status().acts_as_primary(self.lease_ms())
    }

    /// Waits until some leader is known; `None` if none is within `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let mut status = self.watch();
        let found = tokio::time::timeout(timeout, status.wait_for(|s| s.leader.is_some())).await;
        match found {
            Ok(Ok(s)) => s.leader,
            _ => None,
        }
    }

    /// The gateway URL `node_id` announced through raft, if any.
    pub fn gateway_url(&self, node_id: u64) -> Option<String> {
        match self.inner.state.gateway_url(node_id) {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(node_id, error = %e, "reading an announced gateway URL failed");
                None
            }
        }
    }

    /// The cluster address (`host:port`) of `node_id`: the configured one
    /// (`cluster.peers`), else the one the raft membership records (a node
    /// added with `flotillactl members add`).
    pub fn peer_addr(&self, node_id: u64) -> Option<String> {
        if let Some(addr) = self.inner.auth.configured_addr(node_id) {
            return Some(addr.clone());
        }
        self.membership().into_iter().find(|(id, _, _)| *id == node_id).map(|(_, addr, _)| addr)
    }

    /// The highest commit index a leader has sent this node since it
    /// started (`None` on the leader itself, or before any heartbeat).
    pub fn leader_commit(&self) -> Option<u64> {
        self.inner.leader_commit.get()
    }

    /// Whether this follower's leader has gone silent: no message for three
    /// heartbeat intervals (frozen, cut off), its connection closed (killed),
    /// or nothing heard since start-up.
    pub fn leader_silent(&self) -> bool {
        let settings = &self.inner.cfg.settings;
        let window = (settings.heartbeat * 3).min(settings.election_timeout_max);
        self.inner.leader_commit.since_contact().is_none_or(|age| age > window)
    }

    /// An accepted cluster-port connection that reports its closing, so a
    /// follower notices at once when a killed primary's connection drops.
    /// `slot` (the per-address connection limit) is freed with it.
    pub fn track_connection(&self, stream: tokio::net::TcpStream, slot: Option<proto::tls::ConnSlot>) -> PeerConn {
        PeerConn::new(stream, self.inner.leader_commit.clone(), slot)
    }

    /// Index of the last entry applied to this node's catalog.
    pub fn last_applied(&self) -> Option<u64> {
        self.inner.state.last_applied_index().ok().flatten()
    }

    /// Stops raft on this node; later proposals fail.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        self.inner.observer.stopped.store(true, Ordering::Relaxed);
    }

    fn lease_ms(&self) -> u64 {
        self.inner.cfg.settings.election_timeout_max.as_millis() as u64
    }
}

/// How long a membership change may take to commit (a joint
/// configuration is two log entries).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(10);

type MembershipWrite = Result<
    Result<openraft::raft::ClientWriteResponse<crate::types::TypeConfig>, RaftError<u64, ClientWriteError<u64, ClusterNode>>>,
    tokio::time::error::Elapsed,
>;

fn membership_result(written: MembershipWrite) -> Result<u64, ProposeError> {
    match written {
        Err(_) => Err(ProposeError::Timeout),
        Ok(Ok(written)) => Ok(written.log_id.index),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            Err(ProposeError::NotLeader { leader: forward.leader_id })
        }
        Ok(Err(e)) => Err(ProposeError::Fatal(e.to_string())),
    }
}

/// Ids of the voters and learners of the membership `metrics` shows.
fn membership_ids(metrics: &RaftMetrics<u64, ClusterNode>) -> std::collections::BTreeSet<u64> {
    metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect()
}

async fn bootstrap(raft: &Raft, cfg: &RaftConfig) -> Result<(), Error> {
    let initialized = raft.is_initialized().await.map_err(|e| Error::Start(e.to_string()))?;
    if initialized {
        return Ok(());
    }
    let members: BTreeMap<u64, ClusterNode> =
        cfg.peers.iter().map(|(id, addr)| (*id, ClusterNode { addr: addr.clone(), gateway_url: String::new() })).collect();
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(node_id = cfg.node_id, "bootstrapped the raft membership from cluster.peers");
            Ok(())
        }
        // Another node's membership entry arrived first: the same one.
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(Error::Start(format!("bootstrapping the membership: {e}"))),
    }
}

/// Turns raft metrics into [`RaftStatus`], remembering when a quorum last
/// acknowledged this node as leader: openraft reports that as an age at the
/// moment it publishes metrics, which a cut-off leader may stop doing.
struct Observer {
    log: LogStore,
    quorum_acked_at: Mutex<Option<Instant>>,
    /// Set once openraft's core has ended (shut down, or died), after which
    /// its last metrics no longer describe a running node.
    stopped: AtomicBool,
}

impl Observer {
    /// Called for each new metrics value.
    fn observe(&self, metrics: &RaftMetrics<u64, ClusterNode>) -> RaftStatus {
        let acked_at = metrics
            .millis_since_quorum_ack
            .filter(|_| metrics.state == openraft::ServerState::Leader)
            .and_then(|age| Instant::now().checked_sub(Duration::from_millis(age)));
        *self.quorum_acked_at.lock().unwrap_or_else(|p| p.into_inner()) = acked_at;
        self.current(metrics)
    }

    fn current(&self, metrics: &RaftMetrics<u64, ClusterNode>) -> RaftStatus {
        let acked_at = *self.quorum_acked_at.lock().unwrap_or_else(|p| p.into_inner());
        let mut status = RaftStatus::from_metrics(metrics, self.log.committed_index(), acked_at);
        if self.stopped.load(Ordering::Relaxed) {
            status.stopped();
        }
        status
    }
}

async fn publish_status(
    mut metrics: watch::Receiver<RaftMetrics<u64, ClusterNode>>,
    tx: watch::Sender<RaftStatus>,
    observer: Arc<Observer>,
    auth: Arc<ClusterAuth>,
    tick: Duration,
    lease_ms: u64,
) {
    loop {
        let status = tokio::select! {
            changed = metrics.changed() => match changed {
                Ok(()) => {
                    let metrics = metrics.borrow_and_update();
                    auth.set_members(membership_ids(&metrics));
                    observer.observe(&metrics)
                }
                Err(_) => {
                    observer.stopped.store(true, Ordering::Relaxed);
                    tx.send_modify(RaftStatus::stopped);
                    return;
                }
            },
            _ = tokio::time::sleep(tick) => observer.current(&metrics.borrow()),
        };
        tx.send_if_modified(|old| {
            let primary_changed = old.acts_as_primary(lease_ms) != status.acts_as_primary(lease_ms);
            let other_changed = RaftStatus { millis_since_quorum_ack: None, ..old.clone() }
                != RaftStatus { millis_since_quorum_ack: None, ..status.clone() };
            let changed = primary_changed || other_changed;
            if changed {
                *old = status;
            }
            changed
        });
    }
}
