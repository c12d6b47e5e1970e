//! Background work is visible, and shutdown has one deadline: every node
//! lists its named background workers in `/api/v1/status` (and
//! `flotillactl status`) with their state and last error, and stops them in
//! reverse start order; SIGTERM lets a slow request finish within
//! `shutdown_grace` (exit status 0), ends the process soon after the
//! deadline when a request outlives it (exit status 1), and a second signal
//! ends it at once (exit status 1).
//!
//! The tests run one at a time (a lock): clusters share two cores.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harness::cluster::{get_following, Cluster, ClusterOptions};
use harness::ctl::{flotillactl, ADMIN_TOKEN};
use harness::modules::{LARGE_MODULE, LARGE_VERSION};
use harness::{ModuleSet, Node, NodeOptions, Origin, Tamper};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(20);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `workers` list of a `/api/v1/status` body.
fn workers_of(body: &[u8]) -> Vec<Value> {
    let status: Value = serde_json::from_slice(body).expect("status JSON");
    status["workers"].as_array().cloned().unwrap_or_else(|| panic!("no workers list in the status: {status}"))
}

fn named<'a>(workers: &'a [Value], name: &str) -> &'a Value {
    workers.iter().find(|w| w["name"] == name).unwrap_or_else(|| panic!("no worker {name:?} in {workers:#?}"))
}

#[test]
fn cluster_status_lists_every_named_worker_with_its_state() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let opts = ClusterOptions { env: vec![("FLOTILLA_REPLICATION__WORKERS", "2")], ..ClusterOptions::default() };
    let mut cluster = Cluster::start(&origin.url(), opts);
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let expected = [
        "event-follower",
        "placement-reporter",
        "anti-entropy",
        "scrub",
        "replication-worker-1",
        "replication-worker-2",
        "cluster-grpc",
        "announce",
    ];
    for id in cluster.ids() {
        // The first anti-entropy pass runs at start-up.
        let mut workers = Vec::new();
        cluster.wait_for(&format!("node {id}'s first anti-entropy pass in its status"), CONVERGE, || {
            workers = workers_of(&cluster.get(id, "/api/v1/status").body);
            workers.iter().any(|w| w["name"] == "anti-entropy" && w["completed"].as_u64() >= Some(1))
        });
        let names: Vec<&str> = workers.iter().filter_map(|w| w["name"].as_str()).collect();
        assert_eq!(names, expected, "node {id}'s workers, in start order");
        for w in &workers {
            let state = w["state"].as_str().unwrap_or_default();
            assert!(["idle", "working"].contains(&state), "node {id}: worker {} is {state:?}: {w}", w["name"]);
            for key in ["detail", "last_error", "last_error_at", "errors", "completed"] {
                assert!(w.get(key).is_some(), "node {id}: worker {} lacks {key:?}: {w}", w["name"]);
            }
        }
        let grpc = named(&workers, "cluster-grpc");
        assert_eq!(grpc["state"], "working", "{grpc}");
        assert!(grpc["detail"].as_str().is_some_and(|d| d.contains("cluster port")), "{grpc}");
    }

    // A healthy member stops its workers last-started first, then raft,
    // well within shutdown_grace: exit status 0.
    let follower = cluster.others(primary)[0];
    let status = cluster.node_mut(follower).stop().expect("the node was running");
    let logs = cluster.node(follower).logs();
    assert!(status.success(), "exit status {status:?}; log tail:\n{}", cluster.node(follower).log_tail(30));
    let stopped: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("background worker stopped"))
        .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("worker=")))
        .collect();
    let mut reversed = expected.to_vec();
    reversed.reverse();
    assert_eq!(stopped, reversed, "the order node {follower} stopped its workers in");
}

#[test]
fn a_single_node_lists_its_workers_too() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let node = Node::start(NodeOptions::new(origin.url()));
    assert_eq!(workers_of(&node.get("/api/v1/status").body), Vec::<Value>::new(), "a node without peers or admin API runs no workers");

    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = harness::cluster::write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let admin = format!("127.0.0.1:{}", harness::node::free_port());
    let node = Node::start(NodeOptions::new(origin.url()).env("FLOTILLA_ADMIN__LISTEN", &admin).env("FLOTILLA_ADMIN__TOKEN_FILE", &tokens));
    let workers = workers_of(&node.get("/api/v1/status").body);
    assert_eq!(workers.len(), 1, "{workers:#?}");
    let api = named(&workers, "admin-api");
    assert_eq!(api["state"], "working", "{api}");
    assert!(api["detail"].as_str().is_some_and(|d| d.contains(&admin)), "{api}");

    // flotillactl shows the same list (NodeStatus).
    let run = flotillactl(&admin, Some(ADMIN_TOKEN), &["status", "--json"]);
    assert!(run.success, "{}", run.summary());
    let listed = &run.json()["members"][0]["status"]["workers"];
    assert_eq!(listed[0]["name"], "admin-api", "{listed}");
    assert_eq!(listed[0]["state"], "working", "{listed}");
}

#[test]
fn a_follower_whose_pulls_fail_shows_the_error_on_its_replication_worker() {
    let _serial = serial();
    let set = ModuleSet::default().with_large(1 << 20);
    let large = set.get(LARGE_MODULE, LARGE_VERSION).clone();
    let origin = Origin::start(set);
    // Replication at 64 KiB/s: a 1 MiB pull takes 16 s, so the primary is
    // gone before any follower holds the blob.
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = harness::cluster::write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let env = vec![
        ("FLOTILLA_REPLICATION__BANDWIDTH_LIMIT", "64KiB"),
        ("FLOTILLA_REPLICATION__WORKERS", "1"),
        ("FLOTILLA_ADMIN__TOKEN_FILE", tokens.as_str()),
    ];
    let opts = ClusterOptions { env, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(&origin.url(), opts);
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let path = large.url_path("zip");
    let got = get_following(&format!("{}{path}", cluster.url(primary))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.status, 200, "{}", got.summary());
    cluster.node_mut(primary).kill9();

    let follower = cluster.others(primary)[0];
    let sha = large.zip_sha256();
    let mut workers = Vec::new();
    cluster.wait_for(&format!("a failed pull on node {follower}'s replication worker"), Duration::from_secs(60), || {
        workers = cluster.try_get(follower, "/api/v1/status").map(|r| workers_of(&r.body)).unwrap_or_default();
        workers.iter().any(|w| w["name"] == "replication-worker-1" && w["last_error"].is_string())
    });
    let w = named(&workers, "replication-worker-1");
    let error = w["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(&sha), "the error names the blob {sha}: {w}");
    assert!(w["errors"].as_u64() >= Some(1), "{w}");
    let at = w["last_error_at"].as_str().unwrap_or_default();
    assert!(at.len() == "2026-01-01T00:00:00Z".len() && at.ends_with('Z'), "last_error_at is RFC 3339: {w}");
    assert!(w["last_error_at_ms"].as_u64().is_some_and(|ms| ms > 0), "{w}");

    // flotillactl status names the worker and its error.
    let addr = cluster.layout.member(follower).cluster.to_string();
    let run = flotillactl(&addr, Some(ADMIN_TOKEN), &["status"]);
    let line = format!("node {follower} worker replication-worker-1 (");
    let shown = run.stdout.lines().find(|l| l.starts_with(&line)).unwrap_or_else(|| panic!("no line {line:?}: {}", run.summary()));
    assert!(shown.contains("last error at ") && shown.contains(&sha), "{shown}");
}

/// GETs `path` on `addr` in a thread (up to 60 s): its status and body.
fn get_in_background(addr: std::net::SocketAddr, path: String) -> std::thread::JoinHandle<std::io::Result<(u16, Vec<u8>)>> {
    std::thread::spawn(move || harness::http::get_with_timeout(addr, &path, Duration::from_secs(60)).map(|r| (r.status, r.body)))
}

#[test]
fn sigterm_lets_a_slow_request_finish_within_shutdown_grace_and_exits_0() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    // Longer than the 10 s a shutdown used to be allowed, shorter than
    // this node's shutdown_grace.
    let path = "/example.com/alpha/@v/v1.0.0.info";
    origin.tamper(path, Tamper::Delay(Duration::from_secs(12)));
    let mut node = Node::start(NodeOptions::new(origin.url()).env("FLOTILLA_SHUTDOWN_GRACE", "40s"));
    let request = get_in_background(node.addr(), path.to_string());
    harness::wait_for("the origin to receive the request", Duration::from_secs(10), || origin.count(path) == 1);
    let status = node.stop().expect("the node was running");
    let (code, body) = request.join().expect("client thread").expect("the in-flight request is answered");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("v1.0.0"), "{}", String::from_utf8_lossy(&body));
    assert!(status.success(), "exit status {status:?} after a shutdown that finished in time; log tail:\n{}", node.log_tail(20));
}

#[test]
fn a_request_outliving_shutdown_grace_ends_the_process_at_the_deadline_with_status_1() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let path = "/example.com/beta/@v/v1.0.0.info";
    origin.tamper(path, Tamper::Hang);
    let mut node = Node::start(NodeOptions::new(origin.url()).env("FLOTILLA_SHUTDOWN_GRACE", "2s"));
    let _request = get_in_background(node.addr(), path.to_string());
    harness::wait_for("the origin to receive the request", Duration::from_secs(10), || origin.count(path) == 1);
    let started = Instant::now();
    let status = node.stop().expect("the node was running");
    let took = started.elapsed();
    assert!(!status.success(), "exit status {status:?} although a request outlived shutdown_grace");
    assert!(took < Duration::from_secs(6), "the process took {took:?} to end with a shutdown_grace of 2 s");
    assert!(took >= Duration::from_millis(1900), "the process ended after {took:?}, before the deadline");
    let logs = node.logs();
    assert!(logs.contains("shutdown_grace (2s)") && logs.contains("requests were still in flight"), "log tail:\n{}", node.log_tail(20));
}

#[test]
fn a_second_signal_ends_a_draining_node_at_once_with_status_1() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let path = "/example.com/alpha/@v/v1.1.0.info";
    origin.tamper(path, Tamper::Hang);
    let mut node = Node::start(NodeOptions::new(origin.url()).env("FLOTILLA_SHUTDOWN_GRACE", "60s"));
    let _request = get_in_background(node.addr(), path.to_string());
    harness::wait_for("the origin to receive the request", Duration::from_secs(10), || origin.count(path) == 1);
    node.send_signal(libc::SIGTERM);
    node.wait_for_log("shutting down", Duration::from_secs(10));
    let started = Instant::now();
    let status = node.stop().expect("the node was running");
    assert!(!status.success(), "exit status {status:?} after a second signal");
    assert!(started.elapsed() < Duration::from_secs(5), "the second signal took {:?} to end the process", started.elapsed());
}
