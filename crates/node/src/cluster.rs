//! Cluster mode: the raft control plane behind the gateway's `Cluster` seam,
//! and the cluster gRPC server it listens on.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use api::{BlobStatus, ClusterFacts, ClusterStatus, Member};
use futures::future::BoxFuture;
use gateway::{ClusterError, Role};
use raft::{Command, ControlPlane, ProposeError, RaftConfig};
use replicator::Replicator;
use sha2::Digest;
use store::{CatalogOp, Sha256, ZipRef};
use tokio::sync::watch;

use proto::tls::{ClusterTls, ConnLimit, PeerIdentity, Transport};

use crate::admin::AdminService;
use crate::config::Config;

/// How long a catalog write may take to commit before the client gets 503.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RaftCluster {
    control: ControlPlane,
    replicator: Replicator,
    advertise_url: String,
}

impl RaftCluster {
    pub fn new(control: ControlPlane, replicator: Replicator, advertise_url: String) -> Arc<Self> {
        Arc::new(RaftCluster { control, replicator, advertise_url })
    }

    /// With `replication.min_copies` ≥ 2, waits until that many nodes hold
    /// the blob of a zip just committed.
    async fn wait_min_copies(&self, zip: &ZipRef) -> Result<(), ClusterError> {
        let copies = self.replicator.min_copies();
        if copies < 2 {
            return Ok(());
        }
        let timeout = self.replicator.min_copies_timeout();
        self.replicator.wait_copies(&zip.sha256, copies, timeout).await.map_err(|held| {
            tracing::warn!(blob = %zip.sha256, held, copies, "zip not on enough nodes in time; answering 503 (replication goes on)");
            ClusterError::TooFewCopies { held, want: copies, waited: timeout }
        })
    }

    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// Keeps this node's gateway URL recorded in the catalog (through the
    /// primary), so other nodes can redirect clients to it when it leads and
    /// every node's status lists every member's gateway.
    pub async fn announce_gateway_url(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut status = self.control.watch();
        let mut failures = 0u32;
        loop {
            let me = self.control.node_id();
            if self.control.leader().is_some() && self.control.gateway_url(me).as_deref() != Some(&self.advertise_url) {
                match self.control.announce(&self.advertise_url).await {
                    Ok(index) => {
                        failures = 0;
                        tracing::info!(url = %self.advertise_url, index, "announced this node's gateway URL");
                    }
                    // Elections make the first tries fail; say so only if it lasts.
                    Err(e) => {
                        failures += 1;
                        if failures % 10 == 3 {
                            tracing::warn!(error = %e, "could not announce this node's gateway URL; retrying");
                        }
                    }
                }
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                _ = stop.changed() => return,
            }
        }
    }
}

impl gateway::Cluster for RaftCluster {
    fn role(&self) -> Role {
        if self.control.is_acting_primary() {
            return Role::Primary;
        }
        match self.control.leader() {
            Some(leader) if leader != self.control.node_id() => Role::Follower { primary: leader, url: self.control.gateway_url(leader) },
            _ => Role::NoPrimary,
        }
    }

    fn primary_silent(&self) -> bool {
        self.control.leader_silent()
    }

    fn commit(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            let zip = match &op {
                CatalogOp::PutVersion { parts, .. } => parts.zip.clone(),
                _ => None,
            };
            match self.control.write(Command::Catalog(op), COMMIT_TIMEOUT).await {
                // A zip the catalog already had with other content was not
                // recorded (first writer wins): no copies of it will come.
                Ok(applied) => match zip.filter(|_| !applied.kept.iter().any(|p| p == store::PART_ZIP)) {
                    Some(zip) => self.wait_min_copies(&zip).await,
                    None => Ok(()),
                },
                Err(e) => Err(not_committed(e)),
            }
        })
    }

    fn audit(&self, record: store::AuditRecord) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move { self.control.propose(Command::Audit(record), COMMIT_TIMEOUT).await.map(|_| ()).map_err(not_committed) })
    }

    fn wait_for_primary(&self, timeout: Duration) -> BoxFuture<'_, Role> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut status = self.control.watch();
            loop {
                let role = self.role();
                let settled = match &role {
                    Role::NoPrimary => false,
                    Role::Follower { url, .. } => url.is_some(),
                    _ => true,
                };
                if settled {
                    return role;
                }
                tokio::select! {
                    _ = status.changed() => {},
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {},
                    _ = tokio::time::sleep_until(deadline) => return self.role(),
                }
            }
        })
    }

    fn ready(&self) -> Result<(), ClusterError> {
        let s = self.control.status();
        if s.leader.is_none() || self.role() == Role::NoPrimary {
            return Err(ClusterError::Unavailable(format!("no primary known (role {:?}, term {})", s.role, s.term)));
        }
        // A restarted follower remembers the leader of its last term from its
        // stored vote; only a message from a live leader shows how far the
        // cluster has committed.
        let leader_commit = self.control.leader_commit();
        if !self.control.is_acting_primary() && leader_commit.is_none() {
            return Err(ClusterError::Unavailable("no message from the primary since start-up yet".to_string()));
        }
        // Its own committed index, or what a leader said is committed, which
        // is ahead when this node restarted with an old log.
        let committed = s.committed.max(leader_commit);
        match (s.last_applied, committed) {
            (applied, Some(committed)) if applied.unwrap_or(0) < committed => {
                Err(ClusterError::Unavailable(format!("catching up: applied {} of {committed} committed entries", applied.unwrap_or(0))))
            }
            _ => Ok(()),
        }
    }

    fn status(&self) -> ClusterStatus {
        let s = self.control.status();
        let members = self.control.member_addresses().into_iter();
        ClusterStatus::Member(Box::new(ClusterFacts {
            role: s.role,
            acting_primary: self.control.is_acting_primary(),
            term: s.term,
            primary_id: s.leader,
            primary_url: s.leader.and_then(|id| self.control.gateway_url(id)),
            members: members.map(|(id, cluster, gateway_url)| Member { id, cluster, gateway_url }).collect(),
            last_applied: s.last_applied,
            committed: s.committed,
            leader_commit: self.control.leader_commit(),
            ready: self.ready().is_ok(),
            last_log_index: s.last_log_index,
            millis_since_quorum_ack: s.millis_since_quorum_ack,
            voters: s.voters,
            advertise_url: self.advertise_url.clone(),
            replication: self.replicator.status(),
        }))
    }

    fn fetch_blob(&self, zip: &ZipRef) -> BoxFuture<'_, Result<(), ClusterError>> {
        let (sha, size) = (zip.sha256, zip.size);
        Box::pin(async move { self.replicator.fetch_now(sha, size).await.map_err(|e| ClusterError::Unavailable(e.to_string())) })
    }

    fn blob_corrupt(&self, sha: Sha256) {
        self.replicator.corrupt(sha);
    }

    fn blob(&self, sha: &Sha256) -> Option<BlobStatus> {
        Some(self.replicator.blob(sha))
    }
}

/// Why a proposal of this node did not commit, as the gateway sees it.
fn not_committed(e: ProposeError) -> ClusterError {
    match e {
        ProposeError::NotLeader { leader } => ClusterError::NotPrimary { leader },
        ProposeError::Timeout => ClusterError::Timeout { after: COMMIT_TIMEOUT },
        ProposeError::TooLarge { bytes, limit } => ClusterError::TooLarge { bytes, limit },
        ProposeError::Fatal(e) => ClusterError::Fatal(e),
    }
}

/// The raft settings of this node, from its configuration.
pub fn raft_config(config: &Config) -> Result<RaftConfig> {
    let peers = config.cluster.peer_map()?;
    let secret_file = config.cluster.secret_file.as_ref().context("cluster.secret_file is required in cluster mode")?;
    let secret = crate::config::read_secret_file(secret_file, "cluster.secret_file")?;
    let transport = transport(config)?;
    // `cluster.id` pins the id, so the secret can change (rotation) while
    // the data directories stay the cluster's.
    let cluster_id = match &config.cluster.id {
        Some(id) => id.trim().to_string(),
        None => cluster_id(&secret),
    };
    let cfg = RaftConfig {
        node_id: config.node_id,
        peers,
        settings: config.raft.clone(),
        cluster_id,
        secret,
        transport,
        join: config.cluster.join,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Mutual TLS with this node's certificate, or plaintext when
/// `cluster.insecure_plaintext` says so.
fn transport(config: &Config) -> Result<Transport> {
    let Some(files) = config.cluster.tls_files()? else {
        return Ok(Transport::Plaintext);
    };
    let tls = ClusterTls::load(&files).map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))?;
    let want = proto::tls::node_name(config.node_id);
    let own = std::fs::read(&files.cert_file).with_context(|| format!("cannot read {}", files.cert_file.display()))?;
    if !proto::tls::pem_names_node(&own, config.node_id) {
        bail!(
            "cluster.tls_cert_file {} does not name this node ({want}); give node {} its own certificate (`flotilla certs`)",
            files.cert_file.display(),
            config.node_id
        );
    }
    Ok(Transport::Tls(Arc::new(tls)))
}

/// The cluster id when `cluster.id` is not set, from the secret: every
/// node of a new cluster derives the same one without talking to the
/// others, and data or RPCs of a cluster with another secret are refused.
/// The id is a hash, so it reveals nothing. To rotate the secret, pin the
/// id (`cluster.id`) first: it then no longer depends on the secret.
fn cluster_id(secret: &str) -> String {
    let digest = sha2::Sha256::digest(format!("flotilla-cluster\n{secret}").as_bytes());
    hex::encode(&digest[..8])
}

const MARKER: &str = "cluster-id";

/// Refuses, before the database is even opened, a data directory that
/// another cluster created (raft checks it again in its own
/// metadata; this check also keeps the files untouched).
pub fn check_marker(data_dir: &Path, cluster_id: &str) -> Result<()> {
    match std::fs::read_to_string(data_dir.join(MARKER)) {
        Ok(stored) if stored.trim() != cluster_id => bail!(
            "data_dir {} belongs to cluster {:?}, this node is configured for cluster {cluster_id:?}; \
             use an empty data_dir, or, if you rotated the cluster secret of this cluster, set cluster.id = {:?} \
             on every node (the id then stays, whatever the secret)",
            data_dir.display(),
            stored.trim(),
            stored.trim()
        ),
        _ => Ok(()),
    }
}

pub fn write_marker(data_dir: &Path, cluster_id: &str) -> Result<()> {
    let path = data_dir.join(MARKER);
    if !path.exists() {
        std::fs::write(&path, format!("{cluster_id}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// This node's cluster listen address: `cluster.listen`, or the port of its
/// own entry in `cluster.peers` on all interfaces.
pub fn listen_addr(config: &Config, raft: &RaftConfig) -> Result<SocketAddr> {
    if let Some(addr) = config.cluster.listen {
        return Ok(addr);
    }
    let own = raft.peers.get(&raft.node_id).context("node_id is not in cluster.peers")?;
    let port: u16 = own
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("cluster.peers entry for node {} ({own}) has no port", raft.node_id))?;
    Ok(SocketAddr::from(([0, 0, 0, 0], port)))
}

/// Connections one remote IP address may hold open on the cluster port
/// (nodes use a handful each; tests run every node on one address).
const MAX_CONNECTIONS_PER_IP: usize = 64;
/// Concurrent requests (HTTP/2 streams) on one cluster connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// Serves the cluster gRPC port (raft, blobs and admin) until `stop` turns
/// true: over mutual TLS, where a connection reaches the gRPC server only
/// once its certificate names a member (or flotillactl), or in plaintext.
pub async fn serve_grpc(
    control: ControlPlane,
    replicator: Replicator,
    admin: AdminService,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (cluster.listen)"))?;
    let auth = control.auth();
    let tls = match auth.transport() {
        Transport::Tls(tls) => Some(tls.server_config().map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))?),
        Transport::Plaintext => {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "the cluster port listens in PLAINTEXT on a non-loopback address (cluster.insecure_plaintext = true): \
                     anyone on the network can read the cluster secret; set cluster.tls_* instead"
                );
            }
            None
        }
    };
    tracing::info!(%addr, tls = tls.is_some(), "cluster port listening");
    // Raft messages and blob chunks are small writes that must not wait for
    // Nagle's algorithm and the peer's delayed ACK (~40 ms each).
    let tracker = control.clone();
    let limit = ConnLimit::new(MAX_CONNECTIONS_PER_IP);
    let incoming = tokio_stream::StreamExt::filter_map(tokio_stream::wrappers::TcpListenerStream::new(listener), move |conn| {
        let stream = match conn {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a cluster connection failed");
                return None;
            }
        };
        let remote = stream.peer_addr().ok();
        let slot = match remote {
            Some(remote) => match limit.admit(remote.ip()) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!(%remote, "refused cluster connection: {MAX_CONNECTIONS_PER_IP} connections from this address are open");
                    return None;
                }
            },
            None => None,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a cluster connection");
        }
        Some((tracker.track_connection(stream, slot), remote))
    });
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(proto::tls::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(proto::tls::KEEPALIVE_TIMEOUT))
        .add_service(control.service())
        .add_service(replicator.service())
        .add_service(admin.server());
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    match tls {
        None => {
            let incoming = tokio_stream::StreamExt::map(incoming, |(conn, _)| Ok::<_, std::io::Error>(conn));
            server.serve_with_incoming_shutdown(incoming, shutdown).await
        }
        Some(config) => {
            // The raft membership of the moment: a node added later is admitted.
            let members = control.clone();
            let admit = move |cert: &proto::tls::CertificateDer<'_>| match ClusterTls::identify(cert, members.members()) {
                PeerIdentity::Node(_) | PeerIdentity::Ctl => Ok(()),
                PeerIdentity::Stranger(why) => Err(why),
            };
            server.serve_with_incoming_shutdown(proto::tls::accept(Box::pin(incoming), config, admit), shutdown).await
        }
    }
    .context("cluster gRPC server failed")
}
