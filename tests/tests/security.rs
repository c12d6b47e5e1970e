//! The cluster port on a hostile network: mutual TLS with certificates made
//! by `flotilla certs` (the go command works through a TLS cluster;
//! strangers with the secret but without a member's certificate are refused
//! and logged; the sender's node id comes from its certificate), requests
//! authenticated before their body is read, and a cap on connections per
//! address.
//!
//! The tests run one at a time (a lock), like the cluster suite.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harness::cluster::{make_certs, Cluster, ClusterOptions};
use harness::{GoEnv, ModuleSet, Origin};
use proto::tls::{ClusterTls, Transport};
use proto::{AnnounceRequest, RaftClient, RaftRequest, StatRequest};
use tonic::metadata::AsciiMetadataValue;

const CONVERGE: Duration = Duration::from_secs(30);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// TLS material: `ca` trusted for the server, `name`.crt/.key from `dir` presented.
fn tls_from(ca: &Path, dir: &Path, name: &str) -> Transport {
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let tls = ClusterTls::from_pem(read(ca), read(&dir.join(format!("{name}.crt"))), read(&dir.join(format!("{name}.key"))))
        .expect("usable TLS files");
    Transport::Tls(std::sync::Arc::new(tls))
}

fn stamp<T>(mut request: tonic::Request<T>, cluster: &Cluster) -> tonic::Request<T> {
    let secret = std::fs::read_to_string(&cluster.layout.secret_file).unwrap().trim().to_owned();
    let id = cluster_id(cluster);
    request.metadata_mut().insert("x-flotilla-secret", AsciiMetadataValue::try_from(secret).unwrap());
    request.metadata_mut().insert("x-flotilla-cluster", AsciiMetadataValue::try_from(id).unwrap());
    request
}

/// The cluster id node 1 recorded in its data directory.
fn cluster_id(cluster: &Cluster) -> String {
    let path = cluster.node(1).data_dir().join("cluster-id");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_owned()
}

/// A `Blobs.Stat` from `from` over `transport` to member `target`; the
/// status code (Ok as `None`) and message, or the transport error.
async fn stat(cluster: &Cluster, transport: &Transport, target: u64, from: u64) -> Result<(), String> {
    let addr = cluster.layout.member(target).cluster.to_string();
    let channel = transport
        .endpoint(&addr, &proto::tls::node_name(target))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let request = stamp(tonic::Request::new(StatRequest { from, sha256: "0".repeat(64) }), cluster);
    proto::BlobsClient::new(channel).stat(request).await.map(|_| ()).map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[test]
fn a_cluster_over_mutual_tls_serves_the_go_command() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let origin = Origin::start(set.clone());
    let cluster = Cluster::start(&origin.url(), ClusterOptions { tls: true, ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    for id in cluster.ids() {
        let logs = cluster.node(id).logs();
        assert!(logs.contains("cluster port listening") && logs.contains("tls=true"), "node {id} does not use TLS:\n{logs}");
        assert!(!logs.contains("refused cluster"), "node {id} refused a member:\n{logs}");
    }
    // Misses through a follower reach the primary; every zip replicates to
    // every node over the TLS cluster port.
    let follower = cluster.others(primary)[0];
    let go = GoEnv::new(&cluster.url(follower));
    let specs: Vec<String> = set.versions().map(|v| v.spec()).collect();
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    go.mod_download(&specs.iter().map(String::as_str).collect::<Vec<_>>());
    for v in set.versions() {
        let path = v.url_path("zip");
        for id in cluster.ids() {
            cluster.wait_for(&format!("{} on node {id}", v.spec()), Duration::from_secs(60), || {
                cluster.node(id).blob_path(&v.zip_sha256()).exists()
            });
            let r = cluster.get(id, &path);
            assert!(r.status == 200 && r.body == v.zip, "node {id} {path}: {}", r.summary());
        }
    }
}

#[test]
fn strangers_with_the_secret_but_no_member_certificate_are_refused_and_logged() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let cluster = Cluster::start(&origin.url(), ClusterOptions { tls: true, ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let certs = cluster.layout.tls.clone().unwrap();
    let ca = certs.join("ca.crt");
    let other = cluster.dir().join("other-ca");
    make_certs(&other, &[1]); // a CA of its own, with a "node-1"
    make_certs(&certs, &[9]); // the cluster's CA, a node that is not a member

    runtime().block_on(async {
        // A member's certificate works (the baseline of what follows).
        let member = tls_from(&ca, &certs, &format!("node-{}", cluster.others(primary)[0]));
        let from = cluster.others(primary)[0];
        assert_eq!(stat(&cluster, &member, primary, from).await, Ok(()));

        let err = stat(&cluster, &tls_from(&ca, &other, "node-1"), primary, 1).await.unwrap_err();
        eprintln!("another CA: {err}");
        let err = stat(&cluster, &tls_from(&ca, &certs, "node-9"), primary, 1).await.unwrap_err();
        eprintln!("a non-member name: {err}");
        // Without TLS at all: no gRPC answer.
        let err = stat(&cluster, &Transport::Plaintext, primary, 1).await.unwrap_err();
        eprintln!("plaintext: {err}");
        // flotillactl's certificate opens the admin API, not raft or blobs.
        let err = stat(&cluster, &tls_from(&ca, &certs, "flotillactl"), primary, 1).await.unwrap_err();
        assert!(err.contains("PermissionDenied") && err.contains("does not name a member"), "{err}");
    });
    let logs = cluster.node(primary).logs();
    assert!(logs.contains("refused cluster connection: TLS handshake failed"), "another CA's certificate was not logged:\n{logs}");
    assert!(
        logs.contains("refused cluster connection: the certificate does not name a member"),
        "a non-member's certificate was not logged:\n{logs}"
    );
    assert!(logs.contains("refused cluster RPC: the certificate does not name a member"), "{logs}");
    for id in cluster.ids() {
        assert_eq!(cluster.get(id, "/healthz").status, 200, "node {id} after the strangers");
    }
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
}

#[test]
fn the_sender_is_the_node_its_certificate_names_not_the_one_the_message_claims() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let cluster = Cluster::start(&origin.url(), ClusterOptions { tls: true, ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let certs = cluster.layout.tls.clone().unwrap();
    let ca = certs.join("ca.crt");
    let others = cluster.others(primary);
    let (holder, victim) = (others[0], others[1]);
    let victim_url = cluster.url(victim);
    let transport = tls_from(&ca, &certs, &format!("node-{holder}"));
    runtime().block_on(async {
        // Blobs: a Stat claiming the victim's id with the holder's certificate.
        let err = stat(&cluster, &transport, primary, victim).await.unwrap_err();
        assert!(err.contains("PermissionDenied") && err.contains(&format!("certificate names node {holder}")), "{err}");
        assert_eq!(stat(&cluster, &transport, primary, holder).await, Ok(()));

        // Announce: trying to move the victim's gateway URL.
        let addr = cluster.layout.member(primary).cluster.to_string();
        let channel = transport.endpoint(&addr, &proto::tls::node_name(primary)).unwrap().connect().await.expect("connect as a member");
        let mut raft = RaftClient::new(channel);
        let evil = AnnounceRequest { from: victim, gateway_url: "http://evil.example:8080".into() };
        let err = raft.announce(stamp(tonic::Request::new(evil), &cluster)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        // A raft message naming another sender is refused the same way.
        let vote = RaftRequest { from: victim, payload: b"{}".to_vec(), data: Vec::new() };
        let err = raft.vote(stamp(tonic::Request::new(vote), &cluster)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    });
    assert!(cluster.node(primary).logs().contains("refused cluster RPC: the message claims another node than its certificate names"));
    std::thread::sleep(Duration::from_secs(1));
    let status: serde_json::Value = serde_json::from_slice(&cluster.get(primary, "/api/v1/status").body).unwrap();
    let members = status["cluster"]["members"].as_array().unwrap();
    let recorded = members.iter().find(|m| m["id"] == victim).and_then(|m| m["gateway_url"].as_str()).unwrap_or_default();
    assert_eq!(recorded, victim_url, "the victim's gateway URL changed");
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn unauthenticated_big_messages_are_refused_before_they_are_read() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let pid = cluster.node(primary).pid().unwrap();
    let before = peak_rss(pid);
    let addr = cluster.layout.member(primary).cluster;
    const PARALLEL: usize = 6;
    const SIZE: usize = 48 << 20;
    let started = Instant::now();
    let results = runtime().block_on(async {
        let channel = Transport::Plaintext.endpoint(&addr.to_string(), "node-1").unwrap().connect().await.expect("connect");
        let calls = (0..PARALLEL).map(|_| {
            let mut client = RaftClient::new(channel.clone()).max_encoding_message_size(64 << 20);
            async move {
                let mut request = tonic::Request::new(RaftRequest { from: 1, payload: vec![b' '; SIZE], data: Vec::new() });
                request.metadata_mut().insert("x-flotilla-secret", AsciiMetadataValue::from_static("not-the-secret-0123456789"));
                client.append_entries(request).await.map(|_| ()).map_err(|s| (s.code(), s.message().to_owned()))
            }
        });
        futures::future::join_all(calls).await
    });
    let took = started.elapsed();
    for r in &results {
        let (code, message) = r.clone().unwrap_err();
        assert_eq!(code, tonic::Code::Unauthenticated, "{message}");
    }
    let grew = peak_rss(pid).saturating_sub(before);
    assert!(
        grew < (PARALLEL * SIZE / 4) as u64,
        "the node's peak memory grew by {} MiB for {PARALLEL} refused {} MiB messages: it buffered them",
        grew >> 20,
        SIZE >> 20
    );
    eprintln!("refused {PARALLEL} × {} MiB in {took:?}; peak RSS grew {} MiB", SIZE >> 20, grew >> 20);
    assert!(cluster.node(primary).logs().contains("refused cluster RPC: wrong cluster secret"));
}

#[test]
fn connections_per_address_are_capped() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let addr = cluster.layout.member(primary).cluster;
    // From another loopback address than the members use.
    let open: Vec<std::net::TcpStream> = (0..100)
        .filter_map(|_| {
            let socket = socket2_connect(addr);
            socket.ok()
        })
        .collect();
    assert!(!open.is_empty(), "could not connect from 127.0.0.2");
    cluster.node(primary).wait_for_log("connections from this address are open", Duration::from_secs(10));
    // The members (on 127.0.0.1) still replicate and elect.
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
    drop(open);
}

/// A TCP connection to `addr` from 127.0.0.2.
fn socket2_connect(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let runtime = runtime();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind("127.0.0.2:0".parse().unwrap())?;
        let stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.into_std()
    })
}

#[test]
fn the_cluster_secret_rotates_node_by_node_without_wiping_data() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let v = set.get("example.com/alpha", "v1.1.0").clone();
    let origin = Origin::start(set);
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let fetched = harness::cluster::get_following(&format!("{}{}", cluster.url(1), v.url_path("mod"))).unwrap();
    assert!(fetched.status == 200 && fetched.body == v.go_mod, "{}", fetched.summary());
    let id = cluster_id(&cluster);
    // The new secret lives in a new file; each node moves to it (with the
    // id pinned) in turn, a majority always sharing one secret.
    let new_secret = harness::cluster::write_secret(cluster.dir(), "rotated.secret", "the-rotated-cluster-secret-0123456789");
    let mut moved = Vec::new();
    for node in [1, 2, 3] {
        let opts = cluster.node_mut(node).options_mut();
        opts.env.retain(|(k, _)| k != "FLOTILLA_CLUSTER__SECRET_FILE");
        opts.env.push(("FLOTILLA_CLUSTER__SECRET_FILE".into(), new_secret.display().to_string()));
        opts.env.push(("FLOTILLA_CLUSTER__ID".into(), id.clone()));
        cluster.node_mut(node).restart();
        moved.push(node);
        let group: Vec<u64> = if moved.len() >= 2 { moved.clone() } else { cluster.others(node) };
        cluster.wait_converged(&group, CONVERGE);
    }
    for node in cluster.ids() {
        let logs = cluster.node(node).logs();
        assert!(!logs.contains("belongs to cluster"), "node {node} refused its own data:\n{logs}");
    }
    // Every node kept its data: the version is served from each one's own catalog.
    origin.stop();
    for node in cluster.ids() {
        cluster.wait_for(&format!("{} served by node {node}", v.spec()), Duration::from_secs(30), || {
            cluster.try_get(node, &v.url_path("mod")).is_ok_and(|r| r.status == 200 && r.body == v.go_mod)
        });
    }
}

/// `count` connections to `addr` that send half a request and then nothing.
fn half_sent_requests(addr: std::net::SocketAddr, count: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..count)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            s.write_all(b"GET /example.com/alpha/@v/list HTTP/1.1\r\nHost: mirror\r\nX-Slow: ").unwrap();
            s
        })
        .collect()
}

/// Whether the server closed `stream` (EOF or reset) within `timeout`.
fn closed_within(stream: &mut std::net::TcpStream, timeout: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn half_sent_requests_neither_starve_clients_nor_stay_open() {
    let _serial = serial();
    let (_origin, node) = harness::start_mirror(ModuleSet::standard(), |o| o.env("FLOTILLA_GATEWAY__HEADER_TIMEOUT", "2s"));
    let mut slow = half_sent_requests(node.addr(), 300);
    // A normal client is answered at once meanwhile.
    let started = Instant::now();
    for _ in 0..5 {
        let r = node.get("/example.com/alpha/@v/list");
        assert_eq!(r.status, 200, "{}", r.summary());
    }
    assert!(started.elapsed() < Duration::from_secs(2), "normal requests took {:?}", started.elapsed());
    // The half-sent ones are closed after the header timeout.
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(closed_within(s, Duration::from_secs(6)), "half-sent request {i} of 300 was still open after the 2s header timeout");
    }
}

#[test]
fn gateway_connections_are_capped_and_the_cap_frees_up() {
    let _serial = serial();
    let (_origin, node) = harness::start_mirror(ModuleSet::standard(), |o| {
        o.env("FLOTILLA_GATEWAY__HEADER_TIMEOUT", "2s").env("FLOTILLA_GATEWAY__MAX_CONNECTIONS", "50")
    });
    let _slow = half_sent_requests(node.addr(), 100);
    node.wait_for_log("gateway connection limit reached", Duration::from_secs(10));
    // Slots free up as the header timeout closes the half-sent ones.
    let started = Instant::now();
    let r = harness::http::get_with_timeout(node.addr(), "/healthz", Duration::from_secs(20)).expect("healthz");
    assert_eq!(r.status, 200);
    eprintln!("answered after {:?} behind 100 half-sent requests", started.elapsed());
}

#[test]
fn zip_fills_beyond_the_cap_wait_their_turn() {
    use harness::modules::{LARGE_MODULE, LARGE_VERSION};
    let _serial = serial();
    let set = ModuleSet::standard().with_large(40_000);
    let large = set.get(LARGE_MODULE, LARGE_VERSION).clone();
    let small = set.get("example.com/beta", "v1.0.0").clone();
    let (origin, node) = harness::start_mirror(set, |o| o.env("FLOTILLA_GATEWAY__MAX_FILLS", "1"));
    origin.throttle(&large.url_path("zip"), 8000); // about 5 s
    let addr = node.addr();
    let get = |path: String| std::thread::spawn(move || harness::http::get_with_timeout(addr, &path, Duration::from_secs(60)));
    let slow = get(large.url_path("zip"));
    assert!(harness::wait_until(Duration::from_secs(10), || origin.count(&large.url_path("zip")) > 0), "the large zip was never fetched");
    let quick = get(small.url_path("zip"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(origin.count(&small.url_path("zip")), 0, "with gateway.max_fills = 1 a second zip download started at once");
    for (fetch, v) in [(slow, &large), (quick, &small)] {
        let r = fetch.join().unwrap().expect("zip");
        assert!(r.status == 200 && r.body == v.zip, "{}: {}", v.spec(), r.summary());
    }
    assert_eq!(origin.count(&small.url_path("zip")), 1);
}

/// `count` small versions `example.com/frozen/<prefix><n>`.
fn fresh_versions(set: &mut ModuleSet, prefix: &str, count: usize) -> Vec<harness::ModuleVersion> {
    (0..count)
        .map(|n| {
            let v = ModuleSet::make_version(&format!("example.com/frozen/{prefix}{n}"), &format!("{prefix}{n}"), "v1.0.0");
            set.insert(v.clone());
            v
        })
        .collect()
}

#[test]
fn a_frozen_primary_stalls_neither_misses_nor_zip_reads_on_the_others() {
    use harness::modules::{LARGE_MODULE, LARGE_VERSION};
    let _serial = serial();
    let mut set = ModuleSet::default().with_large(4 << 20);
    let after = fresh_versions(&mut set, "b", 3);
    let large = set.get(LARGE_MODULE, LARGE_VERSION).clone();
    let origin = Origin::start(set);
    let mut cluster =
        Cluster::start(&origin.url(), ClusterOptions { env: vec![("FLOTILLA_REPLICATION__MIN_COPIES", "2")], ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    // One follower pulls slowly (1 MiB/s): it is still copying the 4 MiB
    // zip from the primary when the primary freezes.
    let slow = cluster.others(primary)[0];
    cluster.node_mut(slow).options_mut().env.push(("FLOTILLA_REPLICATION__BANDWIDTH_LIMIT".into(), "1MiB".into()));
    cluster.node_mut(slow).restart();
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let f = harness::cluster::get_following(&format!("{}{}", cluster.url(primary), large.url_path("zip"))).unwrap();
    assert!(f.status == 200 && f.body == large.zip, "{}", f.summary());
    std::thread::sleep(Duration::from_millis(1200));
    cluster.node(primary).pause();
    let others = cluster.others(primary);
    let (new_primary, _) = cluster.wait_converged(&others, CONVERGE);
    // The slow follower's transfer from the frozen node is given up and
    // resumed from a live holder: its zip request finishes within seconds.
    for id in &others {
        let started = Instant::now();
        let r = cluster.get(*id, &large.url_path("zip"));
        let took = started.elapsed();
        assert!(r.status == 200 && r.body == large.zip, "node {id}: {}", r.summary());
        assert!(took < Duration::from_secs(20), "node {id} took {took:?} for the zip with the old primary frozen\n{}", cluster.report());
        eprintln!("node {id} served the zip in {took:?}");
    }
    // New misses: the new primary fetches, the other node makes the second copy.
    let follower = others.iter().copied().find(|&id| id != new_primary).unwrap();
    for v in &after {
        for via in [new_primary, follower] {
            let started = Instant::now();
            let f = harness::cluster::get_following(&format!("{}{}", cluster.url(via), v.url_path("zip"))).unwrap();
            let took = started.elapsed();
            assert!(f.status == 200 && f.body == v.zip, "via node {via} {}: {}", v.spec(), f.summary());
            assert!(took < Duration::from_secs(12), "via node {via}: {} took {took:?} with the old primary frozen", v.spec());
        }
    }
    cluster.node(primary).resume();
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
}

#[test]
fn flotillactl_purges_over_mutual_tls_through_a_follower() {
    use harness::ctl::{flotillactl_env, ADMIN_TOKEN};
    let _serial = serial();
    let set = ModuleSet::standard();
    let v = set.get("example.com/alpha", "v1.1.0").clone();
    let origin = Origin::start(set);
    let dir = tempfile::tempdir().unwrap();
    let token_file = harness::cluster::write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { tls: true, env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() },
    );
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let f = harness::cluster::get_following(&format!("{}{}", cluster.url(primary), v.url_path("zip"))).unwrap();
    assert_eq!(f.status, 200, "{}", f.summary());
    let follower = cluster.layout.member(cluster.others(primary)[0]).cluster.to_string();
    let certs = cluster.layout.tls.clone().unwrap();
    let files = [certs.join("ca.crt"), certs.join("flotillactl.crt"), certs.join("flotillactl.key")].map(|p| p.display().to_string());
    let tls = [
        ("FLOTILLA_TLS_CA_FILE", files[0].as_str()),
        ("FLOTILLA_TLS_CERT_FILE", files[1].as_str()),
        ("FLOTILLA_TLS_KEY_FILE", files[2].as_str()),
    ];
    // Without TLS settings it cannot talk to a TLS cluster, and says what to give.
    let run = flotillactl_env(&follower, Some(ADMIN_TOKEN), &["purge", &v.spec()], &[]);
    assert!(!run.success && run.stderr.contains("--tls-ca-file"), "{}", run.summary());
    // With them, a follower passes the purge on to the primary (over TLS, as itself).
    let run = flotillactl_env(&follower, Some(ADMIN_TOKEN), &["purge", &v.spec()], &tls);
    assert!(run.success && run.stdout.contains("purged"), "{}\n{}", run.summary(), cluster.report());
    let via = cluster.others(primary)[0];
    assert!(cluster.node(via).logs().contains("passing a purge on to the primary"), "{}", cluster.report());
    assert!(cluster.node(primary).logs().contains("purged a module version from the catalog"), "{}", cluster.report());
}

#[test]
fn a_wiped_node_does_not_vote_a_candidate_lacking_committed_entries_into_office() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let v = set.get("example.com/alpha", "v1.1.0").clone();
    let origin = Origin::start(set);
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let others = cluster.others(primary);
    let (behind, wiped) = (others[0], others[1]);
    // `behind` misses a write that `primary` and `wiped` commit.
    cluster.node_mut(behind).stop();
    let r = cluster.get(primary, &v.url_path("mod"));
    assert!(r.status == 200 && r.body == v.go_mod, "{}", r.summary());
    cluster.wait_for("the write on the second node", Duration::from_secs(10), || {
        cluster.try_get(wiped, &v.url_path("mod")).is_ok_and(|r| r.status == 200)
    });
    // Then the primary goes away and `wiped` loses its data.
    cluster.node_mut(primary).stop();
    cluster.node_mut(wiped).stop();
    let data = cluster.node(wiped).data_dir();
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    cluster.node_mut(wiped).restart();
    cluster.node_mut(behind).restart();
    // Electing `behind` with the amnesiac's vote would lose the write.
    std::thread::sleep(Duration::from_secs(5));
    for id in [behind, wiped] {
        let s = cluster.status(id).unwrap();
        assert!(!s.is_leader(), "node {id} was elected without the committed write: {s:?}\n{}", cluster.report());
    }
    assert!(cluster.node(wiped).logs().contains("not voting: this node's log is empty"), "{}", cluster.report());
    // With the node that has the write back, the cluster recovers it all.
    cluster.node_mut(primary).restart();
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
    origin.stop();
    for id in cluster.ids() {
        cluster.wait_for(&format!("the write on node {id}"), Duration::from_secs(30), || {
            cluster.try_get(id, &v.url_path("mod")).is_ok_and(|r| r.status == 200 && r.body == v.go_mod)
        });
    }
}

/// A version of `example.com/huge/<name>` whose `.mod` is about `bytes` long.
fn huge_mod_version(name: &str, bytes: usize) -> harness::ModuleVersion {
    let mut v = ModuleSet::make_version(&format!("example.com/huge/{name}"), name, "v1.0.0");
    let mut go_mod = format!("module example.com/huge/{name}\n\ngo 1.18\n").into_bytes();
    let line = format!("// {}\n", "x".repeat(1000));
    while go_mod.len() < bytes {
        go_mod.extend_from_slice(line.as_bytes());
    }
    v.go_mod = go_mod;
    v
}

#[test]
fn a_12_mib_go_mod_never_stalls_the_log() {
    let _serial = serial();
    let mut set = ModuleSet::default();
    let huge: Vec<_> = (0..3).map(|i| huge_mod_version(&format!("h{i}"), 12 << 20)).collect();
    for v in &huge {
        set.insert(v.clone());
    }
    let later = fresh_versions(&mut set, "later", 3);
    let origin = Origin::start(set);
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let away = cluster.others(primary)[0];
    let other = cluster.others(primary)[1];
    // One follower is away while the large .mod files are asked for: a
    // 12 MiB raft entry would take longer than a heartbeat to reach the
    // other and stall every write.
    cluster.node_mut(away).stop();
    for v in &huge {
        for via in [primary, other] {
            let f = harness::cluster::get_following(&format!("{}{}", cluster.url(via), v.url_path("mod"))).unwrap();
            assert!(f.status == 200 && f.body == v.go_mod, "{} via node {via}: {}", v.spec(), f.summary());
        }
    }
    cluster.node_mut(away).restart();
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
    // Later misses commit on time and reach every node.
    for v in &later {
        let started = Instant::now();
        let r = cluster.get(primary, &v.url_path("mod"));
        assert!(r.status == 200 && r.body == v.go_mod, "{}: {}\n{}", v.spec(), r.summary(), cluster.report());
        assert!(started.elapsed() < Duration::from_secs(3), "{} took {:?}", v.spec(), started.elapsed());
        for id in cluster.ids() {
            cluster.wait_for(&format!("{} on node {id}", v.spec()), Duration::from_secs(10), || {
                cluster.try_get(id, &v.url_path("mod")).is_ok_and(|r| r.status == 200 && r.body == v.go_mod)
            });
        }
    }
    assert!(cluster.node(primary).logs().contains("not caching a .mod larger than"), "{}", cluster.report());
}

/// An `@v/list` body of about `bytes`: distinct tagged versions with long
/// pre-release names (few lines, so the test spends its time on raft, not
/// on sorting versions).
fn big_list_body(bytes: usize) -> Vec<u8> {
    let pad = "x".repeat(200);
    let mut body = Vec::with_capacity(bytes + 256);
    let mut n = 0;
    while body.len() < bytes {
        body.extend_from_slice(format!("v1.0.{n}-{pad}\n").as_bytes());
        n += 1;
    }
    body
}

#[test]
fn a_follower_far_behind_catches_up_through_byte_bounded_batches() {
    let _serial = serial();
    // 90 lists of ~750 KiB: ~80 MiB of raft entries, more than one message
    // may carry (64 MiB) and far more than one heartbeat (100 ms) can.
    const LISTS: usize = 90;
    const LIST_BYTES: usize = 750 << 10;
    let mut set = ModuleSet::default();
    let later = fresh_versions(&mut set, "meanwhile", 4);
    let origin = Origin::start(set);
    let modules: Vec<String> = (0..LISTS).map(|i| format!("example.com/biglist/m{i}")).collect();
    for (i, module) in modules.iter().enumerate() {
        let mut body = big_list_body(LIST_BYTES);
        body.extend_from_slice(format!("v9.9.{i}\n").as_bytes());
        origin.tamper(&harness::modules::list_path(module), harness::origin::Tamper::Body(body));
    }
    // Snapshots only every 100,000 entries: the follower must get the
    // entries themselves through AppendEntries, not a snapshot.
    // Lists stay fresh for the whole test, so a node answers them from its
    // own catalog.
    let env = vec![("FLOTILLA_RAFT__SNAPSHOT_EVERY", "100000"), ("FLOTILLA_CACHE__LIST_TTL", "1h")];
    let opts = ClusterOptions { env, ..ClusterOptions::default() };
    // A list too large for one raft entry is answered, not cached.
    let too_big = "example.com/biglist/huge";
    let mut body = big_list_body(1200 << 10);
    body.extend_from_slice(b"v9.9.9\n");
    origin.tamper(&harness::modules::list_path(too_big), harness::origin::Tamper::Body(body));
    let mut cluster = Cluster::start(&origin.url(), opts);
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let r = cluster.get(primary, &harness::modules::list_path(too_big));
    assert!(r.status == 200 && String::from_utf8_lossy(&r.body).contains("v9.9.9\n"), "{}", r.summary());
    assert!(cluster.node(primary).logs().contains("not caching a list larger than"), "{}", cluster.report());
    let behind = cluster.others(primary)[0];
    cluster.node_mut(behind).stop();
    for module in &modules {
        let r = cluster.get(primary, &harness::modules::list_path(module));
        assert!(r.status == 200 && r.body.len() > LIST_BYTES, "{module}/@v/list: {}\n{}", r.summary(), cluster.report());
    }
    let committed = cluster.status(primary).unwrap().committed.expect("the primary's commit index");
    assert!(committed > LISTS as u64, "the lists were committed: {committed}");
    assert_eq!(
        cluster.node(primary).logs().matches("not caching a list").count(),
        1,
        "lists of {LIST_BYTES} bytes fit in one raft entry (only the huge one is not cached)\n{}",
        cluster.report()
    );

    cluster.node_mut(behind).restart();
    // New misses keep committing on time while the follower catches up.
    for v in &later {
        let started = Instant::now();
        let r = cluster.get(primary, &v.url_path("mod"));
        assert!(r.status == 200 && r.body == v.go_mod, "{}: {}\n{}", v.spec(), r.summary(), cluster.report());
        assert!(started.elapsed() < Duration::from_secs(3), "{} took {:?}\n{}", v.spec(), started.elapsed(), cluster.report());
    }
    cluster.wait_for(&format!("node {behind} applying index {committed}"), Duration::from_secs(60), || {
        cluster.status(behind).is_ok_and(|s| s.last_applied.is_some_and(|a| a >= committed))
    });
    for v in &later {
        cluster.wait_for(&format!("{} on node {behind}", v.spec()), Duration::from_secs(10), || {
            cluster.try_get(behind, &v.url_path("mod")).is_ok_and(|r| r.status == 200 && r.body == v.go_mod)
        });
    }
    // It holds them in its own catalog: with the origin and the primary
    // gone, it lists the versions of the last module (cached through raft).
    origin.stop();
    cluster.node_mut(primary).stop();
    let last = modules.last().unwrap();
    let r = cluster.get(behind, &harness::modules::list_path(last));
    let text = String::from_utf8_lossy(&r.body);
    assert!(r.status == 200 && text.contains(&format!("v9.9.{}\n", LISTS - 1)), "{}\n{}", r.summary(), cluster.report());
    for v in &later {
        let r = cluster.get(behind, &v.url_path("mod"));
        assert!(r.status == 200 && r.body == v.go_mod, "{} on node {behind}: {}\n{}", v.spec(), r.summary(), cluster.report());
    }
}

#[test]
fn a_call_of_another_wire_version_is_refused_with_both_versions() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let from = cluster.others(primary)[0];
    let addr = cluster.layout.member(primary).cluster.to_string();
    let (blobs, admin) = runtime().block_on(async {
        let channel = Transport::Plaintext
            .endpoint(&addr, &proto::tls::node_name(primary))
            .unwrap()
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        // A node of a later release: everything else about the call is right.
        let mut request = stamp(tonic::Request::new(StatRequest { from, sha256: "0".repeat(64) }), &cluster);
        request.metadata_mut().insert(proto::wire::WIRE_HEADER, AsciiMetadataValue::from_static("99"));
        let blobs = proto::BlobsClient::new(channel.clone()).stat(request).await.expect_err("version 99 is refused");
        let mut request = tonic::Request::new(proto::v1::NodeStatusRequest {});
        request.metadata_mut().insert(proto::wire::WIRE_HEADER, AsciiMetadataValue::from_static("99"));
        let admin = proto::AdminClient::new(channel.clone()).node_status(request).await.expect_err("version 99 is refused");
        // Today's nodes, which send no header, are version 1: refused only for what they lack.
        let request = stamp(tonic::Request::new(StatRequest { from, sha256: "0".repeat(64) }), &cluster);
        proto::BlobsClient::new(channel).stat(request).await.expect("an unmarked call is version 1");
        (blobs, admin)
    });
    for refused in [&blobs, &admin] {
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        let message = refused.message();
        assert!(message.contains("cluster wire version 99") && message.contains("speaks version 1"), "{message}");
    }
    assert!(cluster.node(primary).logs().contains("refused cluster RPC: another wire version"), "{}", cluster.report());
}
