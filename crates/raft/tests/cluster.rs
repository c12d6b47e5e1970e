//! Three control planes in one process, each with its own RocksDB and its
//! own gRPC server on loopback: election, replication, failover, refusal of
//! strangers, catch-up by snapshot and cluster identity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gomod::{ModulePath, Version};
use raft::{Command, ControlPlane, ProposeError, RaftConfig, RaftSettings, Role};
use store::{Catalog, CatalogOp, Db, VersionParts};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

const SECRET: &str = "test-secret";
const CLUSTER: &str = "test-cluster";
const DEADLINE: Duration = Duration::from_secs(15);

struct Node {
    id: u64,
    addr: SocketAddr,
    db: Db,
    cp: ControlPlane,
    stop_server: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Node {
    async fn start(id: u64, listener: TcpListener, cfg: RaftConfig) -> Node {
        let dir = TempDir::new().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let addr = listener.local_addr().unwrap();
        let cp = ControlPlane::start(cfg, db.clone()).await.unwrap();
        let (stop_server, stopped) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder().add_service(cp.service());
        let server = tokio::spawn(async move {
            let incoming = TcpListenerStream::new(listener);
            router
                .serve_with_incoming_shutdown(incoming, async {
                    stopped.await.ok();
                })
                .await
                .unwrap();
        });
        Node { id, addr, db, cp, stop_server: Some(stop_server), server: Some(server), _dir: dir }
    }

    async fn stop(&mut self) {
        self.cp.shutdown().await;
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(5), server).await.expect("gRPC server stops").unwrap();
        }
    }

    fn go_mod(&self, module: &str, version: &str) -> Option<Vec<u8>> {
        let (m, v) = (ModulePath::new(module).unwrap(), Version::new(version).unwrap());
        Catalog::new(self.db.clone()).go_mod(&m, &v).unwrap()
    }
}

struct Cluster {
    nodes: Vec<Node>,
}

fn config(id: u64, peers: &BTreeMap<u64, String>, snapshot_every: u64) -> RaftConfig {
    RaftConfig {
        node_id: id,
        peers: peers.clone(),
        settings: RaftSettings { snapshot_every, ..RaftSettings::default() },
        secret: SECRET.into(),
        cluster_id: CLUSTER.into(),
        transport: proto::tls::Transport::Plaintext,
        join: false,
    }
}

/// Logs go to the test output when `RUST_LOG` asks for them.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

impl Cluster {
    /// Starts nodes 1..=3; `tweak` may change a node's config before it starts.
    async fn start(snapshot_every: u64, tweak: impl Fn(&mut RaftConfig)) -> Cluster {
        init_logging();
        let mut listeners = Vec::new();
        let mut peers = BTreeMap::new();
        for id in 1..=3u64 {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            peers.insert(id, listener.local_addr().unwrap().to_string());
            listeners.push((id, listener));
        }
        let mut nodes = Vec::new();
        for (id, listener) in listeners {
            let mut cfg = config(id, &peers, snapshot_every);
            tweak(&mut cfg);
            nodes.push(Node::start(id, listener, cfg).await);
        }
        Cluster { nodes }
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).unwrap()
    }

    fn peers(&self) -> BTreeMap<u64, String> {
        self.nodes.iter().map(|n| (n.id, n.addr.to_string())).collect()
    }

    /// The node that every running member among `among` agrees leads.
    async fn wait_for_leader(&self, among: &[u64]) -> u64 {
        wait_until("a leader every node agrees on", || {
            let leaders: Vec<Option<u64>> = among.iter().map(|id| self.node(*id).cp.status().leader).collect();
            match leaders[0] {
                Some(l) if among.contains(&l) && leaders.iter().all(|x| *x == Some(l)) => self.node(l).cp.is_acting_primary().then_some(l),
                _ => None,
            }
        })
        .await
    }

    /// Proposes on whichever of `among` leads, retrying through elections.
    async fn write(&self, among: &[u64], cmd: Command) -> u64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leader = self.wait_for_leader(among).await;
            match self.node(leader).cp.propose(cmd.clone(), Duration::from_secs(3)).await {
                Ok(index) => return index,
                Err(e) if Instant::now() < deadline => eprintln!("retrying proposal: {e}"),
                Err(e) => panic!("proposal failed: {e}"),
            }
        }
    }

    async fn shutdown(mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
    }
}

fn put_version(module: &str, version: &str) -> Command {
    let parts = VersionParts { go_mod: Some(format!("module {module} // {version}\n").into_bytes()), ..Default::default() };
    Command::Catalog(CatalogOp::PutVersion { module: ModulePath::new(module).unwrap(), version: Version::new(version).unwrap(), parts })
}

/// Polls `check` until it yields a value; panics after [`DEADLINE`].
async fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_replicates_writes_and_followers_refuse_proposals() {
    let cluster = Cluster::start(raft::DEFAULT_SNAPSHOT_EVERY, |_| {}).await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;

    cluster.write(&[1, 2, 3], put_version("example.com/a", "v1.0.0")).await;
    for node in &cluster.nodes {
        wait_until("the version on every node", || node.go_mod("example.com/a", "v1.0.0")).await;
    }

    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    assert!(!follower.cp.is_acting_primary());
    assert_eq!(follower.cp.status().role, Role::Follower);
    let refused = follower.cp.propose(put_version("example.com/a", "v1.0.1"), Duration::from_secs(2)).await;
    assert_eq!(refused, Err(ProposeError::NotLeader { leader: Some(leader) }));

    let announce = Command::AnnounceNode { node_id: leader, gateway_url: "http://127.0.0.1:8080".into() };
    cluster.write(&[1, 2, 3], announce).await;
    for node in &cluster.nodes {
        wait_until("the announced gateway URL everywhere", || node.cp.gateway_url(leader)).await;
        assert_eq!(node.cp.peer_addr(leader), Some(cluster.node(leader).addr.to_string()));
    }
    let status = cluster.node(leader).cp.status();
    assert_eq!(status.voters, vec![1, 2, 3]);
    assert!(status.committed >= Some(2) && status.last_applied >= Some(2), "{status:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_the_leader_elects_another_and_writes_go_on() {
    let mut cluster = Cluster::start(raft::DEFAULT_SNAPSHOT_EVERY, |_| {}).await;
    let old = cluster.wait_for_leader(&[1, 2, 3]).await;
    cluster.write(&[1, 2, 3], put_version("example.com/b", "v1.0.0")).await;

    let stopped_at = Instant::now();
    cluster.nodes.iter_mut().find(|n| n.id == old).unwrap().stop().await;
    let rest: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != old).collect();
    let new = cluster.wait_for_leader(&rest).await;
    let failover = stopped_at.elapsed();
    assert_ne!(new, old);
    assert_eq!(cluster.node(old).cp.status().role, Role::Shutdown);
    assert!(failover < Duration::from_secs(5), "failover took {failover:?}");
    eprintln!("failover took {failover:?}");

    cluster.write(&rest, put_version("example.com/b", "v1.1.0")).await;
    for id in &rest {
        let node = cluster.node(*id);
        wait_until("the post-failover write on the survivors", || node.go_mod("example.com/b", "v1.1.0")).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_wrong_secret_cannot_join() {
    let cluster = Cluster::start(raft::DEFAULT_SNAPSHOT_EVERY, |cfg| {
        if cfg.node_id == 3 {
            cfg.secret = "not-the-secret".into();
        }
    })
    .await;
    cluster.wait_for_leader(&[1, 2]).await;
    cluster.write(&[1, 2], put_version("example.com/c", "v1.0.0")).await;
    for id in [1, 2] {
        let node = cluster.node(id);
        wait_until("the write on the good nodes", || node.go_mod("example.com/c", "v1.0.0")).await;
    }
    let outsider = cluster.node(3);
    assert_eq!(outsider.go_mod("example.com/c", "v1.0.0"), None);
    assert_eq!(outsider.cp.status().leader, None);
    assert!(!outsider.cp.is_acting_primary());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_service_refuses_strangers() {
    use proto::{RaftClient, RaftRequest};
    use tonic::Code;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = BTreeMap::from([(1, addr.to_string())]);
    let mut node = Node::start(1, listener, config(1, &peers, 10)).await;
    let mut client = RaftClient::connect(format!("http://{addr}")).await.unwrap();

    let call = |secret: &str, cluster: &str, from: u64| {
        let mut request = tonic::Request::new(RaftRequest { from, payload: b"{}".to_vec(), ..Default::default() });
        request.metadata_mut().insert("x-flotilla-secret", secret.parse().unwrap());
        request.metadata_mut().insert("x-flotilla-cluster", cluster.parse().unwrap());
        request
    };
    let code = |r: Result<tonic::Response<proto::RaftReply>, tonic::Status>| r.unwrap_err().code();
    let missing = tonic::Request::new(RaftRequest { from: 1, ..Default::default() });
    let status = client.vote(missing).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("wrong cluster secret"), "{}", status.message());
    assert_eq!(code(client.vote(call("guess", CLUSTER, 1)).await), Code::Unauthenticated);
    assert_eq!(code(client.append_entries(call(SECRET, "other-cluster", 1)).await), Code::FailedPrecondition);
    assert_eq!(code(client.install_snapshot(call(SECRET, CLUSTER, 7)).await), Code::PermissionDenied);
    assert_eq!(code(client.vote(call(SECRET, CLUSTER, 1)).await), Code::InvalidArgument);

    let announce = |secret: &str, url: &str| {
        let mut request = tonic::Request::new(proto::AnnounceRequest { from: 1, gateway_url: url.into() });
        request.metadata_mut().insert("x-flotilla-secret", secret.parse().unwrap());
        request.metadata_mut().insert("x-flotilla-cluster", CLUSTER.parse().unwrap());
        request
    };
    let refused = client.announce(announce("guess", "http://n1:8080")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = client.announce(announce(SECRET, "n1:8080")).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("http(s) URL"), "{refused:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(10, |_| {}).await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    let versions: Vec<String> = (0..35).map(|i| format!("v1.0.{i}")).collect();
    for version in &versions {
        cluster.write(&[1, 2, 3], put_version("example.com/d", version)).await;
    }
    let leader = cluster.node(leader);
    let first_log = wait_until("the leader to purge its early log", || {
        let (key, _) = leader.db.scan_range(store::CF_RAFT_LOG, &[], None).unwrap().into_iter().next()?;
        let first = u64::from_be_bytes(key.try_into().unwrap());
        (first > 5).then_some(first)
    })
    .await;
    eprintln!("leader's log now starts at {first_log}");

    let victim_id = cluster.nodes.iter().map(|n| n.id).find(|id| *id != leader.id).unwrap();
    let peers = cluster.peers();
    let victim = cluster.nodes.iter_mut().find(|n| n.id == victim_id).unwrap();
    victim.stop().await;
    let listener = TcpListener::bind(victim.addr).await.unwrap();
    *victim = Node::start(victim_id, listener, config(victim_id, &peers, 10)).await;

    let victim = cluster.node(victim_id);
    for version in &versions {
        wait_until("the wiped node to hold every version", || victim.go_mod("example.com/d", version)).await;
    }
    for node in &cluster.nodes {
        assert_ne!(node.cp.status().role, Role::Shutdown, "raft on node {} died", node.id);
    }
    let expected = Catalog::new(cluster.nodes.iter().find(|n| n.id != victim_id).unwrap().db.clone());
    let module = ModulePath::new("example.com/d").unwrap();
    assert_eq!(Catalog::new(victim.db.clone()).versions(&module).unwrap(), expected.versions(&module).unwrap());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_of_another_cluster_is_refused() {
    let dir = TempDir::new().unwrap();
    let db = Db::open(&dir.path().join("db")).unwrap();
    let peers = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
    let first = ControlPlane::start(config(1, &peers, 10), db.clone()).await.unwrap();
    first.shutdown().await;

    let mut other = config(1, &peers, 10);
    other.cluster_id = "another-cluster".into();
    let err = ControlPlane::start(other, db.clone()).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("belongs to cluster \"test-cluster\"") && msg.contains("\"another-cluster\""), "{msg}");
    assert!(msg.contains("use an empty data_dir"), "{msg}");

    let again = ControlPlane::start(config(1, &peers, 10), db).await.unwrap();
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_removes_the_version_and_its_zip_placement_everywhere() {
    let cluster = Cluster::start(raft::DEFAULT_SNAPSHOT_EVERY, |_| {}).await;
    let (module, version) = ("example.com/p", "v1.0.0");
    let (sha, other): (store::Sha256, store::Sha256) = ("ab".repeat(32).parse().unwrap(), "cd".repeat(32).parse().unwrap());
    let with_zip = |v: &str, sha: &store::Sha256| {
        let zip = store::ZipRef { sha256: *sha, size: 10, h1: "h1:x".into(), fetched_at_ms: 0 };
        Command::Catalog(CatalogOp::PutVersion {
            module: ModulePath::new(module).unwrap(),
            version: Version::new(v).unwrap(),
            parts: VersionParts { zip: Some(zip), ..Default::default() },
        })
    };
    cluster.write(&[1, 2, 3], with_zip(version, &sha)).await;
    cluster.write(&[1, 2, 3], with_zip("v1.0.1", &other)).await;
    for node_id in [1, 2] {
        cluster.write(&[1, 2, 3], Command::BlobStored { node_id, blobs: vec![sha, other] }).await;
    }
    for node in &cluster.nodes {
        wait_until("placement everywhere", || (node.cp.placement(&sha) == [1, 2]).then_some(())).await;
    }

    let purge = CatalogOp::Purge { module: ModulePath::new(module).unwrap(), version: Version::new(version).unwrap() };
    cluster.write(&[1, 2, 3], Command::Catalog(purge)).await;
    for node in &cluster.nodes {
        let catalog = Catalog::new(node.db.clone());
        let (m, v) = (ModulePath::new(module).unwrap(), Version::new(version).unwrap());
        wait_until("the purge on every node", || catalog.zip(&m, &v).unwrap().is_none().then_some(())).await;
        assert!(node.cp.placement(&sha).is_empty(), "node {}: the purged zip's placement is left", node.id);
        assert_eq!(node.cp.placement(&other), [1, 2], "node {}: another version's placement went too", node.id);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_too_large_for_one_entry_is_not_proposed_and_one_that_fits_commits() {
    let cluster = Cluster::start(raft::DEFAULT_SNAPSHOT_EVERY, |_| {}).await;
    let leader = cluster.wait_for_leader(&[1, 2, 3]).await;
    let url = |len: usize| format!("http://{}", "x".repeat(len));
    let huge = Command::AnnounceNode { node_id: leader, gateway_url: url(raft::MAX_COMMAND_BYTES) };
    let refused = cluster.node(leader).cp.propose(huge, Duration::from_secs(3)).await;
    assert!(
        matches!(refused, Err(ProposeError::TooLarge { bytes, limit }) if limit == raft::MAX_COMMAND_BYTES && bytes > limit),
        "{refused:?}"
    );
    // Just under the cap: one entry, replicated to every node.
    let fits = url(raft::MAX_COMMAND_BYTES - 200);
    cluster.write(&[1, 2, 3], Command::AnnounceNode { node_id: leader, gateway_url: fits.clone() }).await;
    for node in &cluster.nodes {
        wait_until("the largest entry on every node", || node.cp.gateway_url(leader).filter(|u| *u == fits)).await;
    }
    cluster.shutdown().await;
}
