//! Three real `flotilla` processes in cluster mode in front of one fake
//! origin: election, serving from any node what any node fetched, redirects
//! and forwarding of misses, failover under a running go command (SIGKILL),
//! a frozen primary (SIGSTOP/SIGCONT), snapshot catch-up of a wiped node,
//! and refusal of wrong secrets and foreign data directories.
//!
//! The tests run one at a time (a lock): six clusters with 100 ms heartbeats
//! on two cores at once would mostly test the scheduler.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harness::cluster::{
    file_sizes, get_following, probe_status, run_serve_once, write_secret, Cluster, ClusterOptions, Layout, Member, Status,
};
use harness::escape::escape;
use harness::modules::list_path;
use harness::node::free_port;
use harness::{GoEnv, ModuleSet, ModuleVersion, Node, Origin, Program, Tamper};

/// An election among freshly started nodes, or after a failure.
const CONVERGE: Duration = Duration::from_secs(20);
/// Replication of a committed entry to a follower that is up.
const REPLICATE: Duration = Duration::from_secs(10);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes the origin answer every `@v/list` with an empty list, so a list a
/// node serves shows exactly the versions its own catalog holds.
fn empty_upstream_lists(origin: &Origin) {
    let paths: Vec<String> = origin.modules().paths().map(str::to_owned).collect();
    for path in paths {
        origin.tamper(&list_path(&path), Tamper::Body(Vec::new()));
    }
}

fn is_pseudo(v: &ModuleVersion) -> bool {
    v.version.starts_with("v0.0.0-")
}

/// `GET` through `node_url` following redirects; panics with the cluster
/// report unless it answers 200 with `expected`.
fn fetch_ok(cluster: &Cluster, node_url: &str, path: &str, expected: &[u8]) -> harness::cluster::Fetched {
    let f = get_following(&format!("{node_url}{path}")).unwrap_or_else(|e| panic!("{e}\n{}", cluster.report()));
    assert_eq!(f.status, 200, "GET {node_url}{path}: {}\n{}", f.summary(), cluster.report());
    assert!(f.body == expected, "GET {node_url}{path}: {} bytes that differ from the origin's {}", f.body.len(), expected.len());
    f
}

/// Waits until node `id` answers `path` itself (200, no redirect) with `expected`.
fn wait_served_directly(cluster: &Cluster, id: u64, path: &str, expected: &[u8], timeout: Duration) {
    let mut last = String::new();
    let ok = harness::wait_until(timeout, || match cluster.try_get(id, path) {
        Ok(r) if r.status == 200 && r.body == expected => true,
        Ok(r) => {
            last = r.summary();
            false
        }
        Err(e) => {
            last = e.to_string();
            false
        }
    });
    assert!(ok, "node {id} does not serve {path} itself within {timeout:?}; last answer: {last}\n{}", cluster.report());
}

/// Waits until node `id` answers `@v/list` of `module` itself listing every one of `versions`.
fn wait_lists_directly(cluster: &Cluster, id: u64, module: &str, versions: &[&str], timeout: Duration) {
    let path = list_path(module);
    let mut last = String::new();
    let ok = harness::wait_until(timeout, || match cluster.try_get(id, &path) {
        Ok(r) if r.status == 200 => {
            let text = r.text();
            let listed: BTreeSet<&str> = text.lines().collect();
            last = r.summary();
            versions.iter().all(|v| listed.contains(v))
        }
        Ok(r) => {
            last = r.summary();
            false
        }
        Err(e) => {
            last = e.to_string();
            false
        }
    });
    assert!(ok, "node {id} does not list {versions:?} for {module} itself within {timeout:?}; last answer: {last}\n{}", cluster.report());
}

#[test]
fn three_nodes_elect_one_primary_and_every_node_serves_what_any_node_fetched() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    empty_upstream_lists(&origin);
    let cluster = Cluster::start(&origin.url(), ClusterOptions { order: vec![3, 1, 2], ..Default::default() });
    let (primary, statuses) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let terms: BTreeSet<u64> = statuses.values().map(|s| s.term).collect();
    assert_eq!(terms.len(), 1, "nodes agree on the primary but not on the term: {statuses:#?}");
    let follower = cluster.others(primary)[0];

    let v = origin.modules().get("example.com/Upper/mod", "v1.1.0-RC1").clone();
    for (ext, bytes) in [("info", &v.info), ("mod", &v.go_mod), ("zip", &v.zip)] {
        fetch_ok(&cluster, &cluster.url(follower), &v.url_path(ext), bytes);
    }

    // The upstream list is empty, so the version is listed only because the
    // catalog of the node that answers holds it.
    fetch_ok(&cluster, &cluster.url(follower), &list_path(&v.path), format!("{}\n", v.version).as_bytes());
    for id in cluster.ids() {
        wait_served_directly(&cluster, id, &v.url_path("mod"), &v.go_mod, REPLICATE);
        wait_served_directly(&cluster, id, &v.url_path("info"), &v.info, REPLICATE);
        wait_lists_directly(&cluster, id, &v.path, &[&v.version], REPLICATE);
    }
    for ext in ["info", "mod", "zip"] {
        let path = v.url_path(ext);
        assert_eq!(origin.count(&path), 1, "upstream fetches of {path}; origin requests: {:?}", origin.requests());
    }

    // Every node announced its gateway through the primary: every status
    // lists every member's cluster address and gateway URL.
    let expected: BTreeMap<u64, (String, String)> =
        cluster.layout.members.iter().map(|m| (m.id, (m.cluster.to_string(), m.url()))).collect();
    for id in cluster.ids() {
        let mut seen = BTreeMap::new();
        cluster.wait_for(&format!("node {id}'s status to list every member's gateway"), CONVERGE, || {
            let Ok(r) = cluster.try_get(id, "/api/v1/status") else { return false };
            let Ok(status) = serde_json::from_slice::<serde_json::Value>(&r.body) else { return false };
            seen = status["cluster"]["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let gateway = m["gateway_url"].as_str()?.to_owned();
                    Some((m["id"].as_u64()?, (m["cluster"].as_str()?.to_owned(), gateway)))
                })
                .collect();
            seen == expected
        });
    }
}

#[test]
fn follower_redirects_miss_to_primary() {
    let _serial = serial();
    let origin = Origin::start(ModuleSet::standard());
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let follower = cluster.others(primary)[0];
    let primary_url = cluster.url(primary);

    // Redirect mode (the default): 307 to the same raw path on the primary.
    let set = origin.modules();
    let v = set.get("example.com/Upper/mod", "v1.0.0");
    for (ext, bytes) in [("mod", &v.go_mod), ("info", &v.info), ("zip", &v.zip)] {
        let path = v.url_path(ext);
        let r = cluster.get(follower, &path);
        assert_eq!(r.status, 307, "miss {path} on follower {follower}: {}\n{}", r.summary(), cluster.report());
        let location = r.header("location").unwrap_or_default().to_owned();
        assert_eq!(location, format!("{primary_url}{path}"), "Location of the redirect for {path}");
        let target = get_following(&location).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(target.status, 200, "following the redirect: {}", target.summary());
        assert!(target.body == *bytes, "{location}: bytes differ from the origin's");
    }

    // Forward mode: the follower fetches the miss from the primary and answers itself.
    cluster.node_mut(follower).options_mut().env.push(("FLOTILLA_GATEWAY__MODE".into(), "forward".into()));
    cluster.node_mut(follower).restart();
    let (after, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    assert_ne!(after, follower, "the restarted follower became primary; cannot test forward mode");
    let v = set.get("example.com/beta", "v1.0.0");
    let mut conn = harness::http::KeepAlive::connect(cluster.addr(follower)).expect("connect to the follower");
    for ext in ["mod", "info", "zip"] {
        let path = v.url_path(ext);
        let r = conn.request("HEAD", &path, &[]).expect("HEAD on the forwarding follower");
        assert_eq!(r.status, 404, "HEAD {path} of an uncached version on forwarding follower {follower}: {:?}", r.headers);
        assert_eq!(origin.count(&path), 0, "HEAD {path} was fetched upstream; origin requests: {:?}", origin.requests());
    }
    let probes_before = readyz_requests(&cluster, after);
    for (ext, bytes) in [("mod", &v.go_mod), ("info", &v.info), ("zip", &v.zip)] {
        let path = v.url_path(ext);
        let r = cluster.get(follower, &path);
        assert_eq!(r.status, 200, "miss {path} on forwarding follower {follower}: {}\n{}", r.summary(), cluster.report());
        assert!(r.header("location").is_none(), "forward mode answered with a Location: {:?}", r.headers);
        assert!(r.body == *bytes, "{path} forwarded by node {follower}: {} bytes that differ from the origin's", r.body.len());
        assert_eq!(origin.count(&path), 1, "upstream fetches of {path}; origin requests: {:?}", origin.requests());
    }
    // The relayed request is the only one: no readiness probe before it.
    assert_eq!(readyz_requests(&cluster, after), probes_before, "the forwarding follower probed the primary's /readyz");
}

/// `/readyz` requests node `id` has answered so far (its own metrics).
fn readyz_requests(cluster: &Cluster, id: u64) -> u64 {
    let metrics = cluster.get(id, "/metrics").text();
    metrics
        .lines()
        .filter(|l| l.starts_with("flotilla_http_requests_total{") && l.contains("route=\"readyz\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Where the go command keeps a downloaded `.mod`.
fn cached_mod(go: &GoEnv, v: &ModuleVersion) -> std::path::PathBuf {
    go.modcache().join("cache/download").join(escape(&v.path)).join("@v").join(format!("{}.mod", escape(&v.version)))
}

#[test]
fn killing_the_primary_elects_a_new_one_and_go_downloads_succeed_with_nothing_acknowledged_lost() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let origin = Origin::start(set.clone());
    empty_upstream_lists(&origin);
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, statuses) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let old_term = statuses[&primary].term;
    let survivors = cluster.others(primary);
    let (a, b) = (survivors[0], survivors[1]);

    // Warm two of the program's modules.
    let mut acknowledged: Vec<ModuleVersion> = Vec::new();
    for (path, version) in [("example.com/alpha", "v1.2.0"), ("example.com/beta", "v1.3.0")] {
        let v = set.get(path, version).clone();
        for (ext, bytes) in [("info", &v.info), ("mod", &v.go_mod), ("zip", &v.zip)] {
            fetch_ok(&cluster, &cluster.url(primary), &v.url_path(ext), bytes);
        }
        acknowledged.push(v);
    }

    // go mod download of the whole program through the two other nodes,
    // killing the primary as soon as the go command causes an upstream fetch.
    let go = GoEnv::new(&format!("{}|{}", cluster.url(a), cluster.url(b)));
    go.write_program(&Program::standard());
    let before = origin.requests().len();
    let go_thread = std::thread::spawn(move || {
        let out = go.run(&["mod", "download", "-x"]);
        (go, out)
    });
    let started = Instant::now();
    let fetching = harness::wait_until(Duration::from_secs(60), || origin.requests().len() > before || go_thread.is_finished());
    assert!(fetching, "the go command caused no upstream fetch within 60 s");
    let killed_after = started.elapsed();
    cluster.node_mut(primary).kill9();
    let killed_at = Instant::now();
    let (go, out) = go_thread.join().expect("go thread");
    eprintln!("primary {primary} killed {killed_after:?} after go started; go took {:?} more: {out}", killed_at.elapsed());

    let (new_primary, statuses) = cluster.wait_converged(&survivors, CONVERGE);
    eprintln!("new primary {new_primary} ready {:?} after the kill", killed_at.elapsed());
    let new_term = statuses[&new_primary].term;
    assert!(new_term > old_term, "new primary {new_primary} has term {new_term}, the killed one had {old_term}");

    // Every version the go command got a 200 for (its .mod is in its cache).
    let program = Program::standard();
    let downloaded: Vec<ModuleVersion> =
        program.requires.iter().map(|(p, v)| set.get(p, v).clone()).filter(|v| cached_mod(&go, v).is_file()).collect();
    eprintln!("go has .mod of {:?}", downloaded.iter().map(ModuleVersion::spec).collect::<Vec<_>>());
    for v in downloaded {
        if !acknowledged.iter().any(|w| w.spec() == v.spec()) {
            acknowledged.push(v);
        }
    }

    // A version fetched while the old primary is down.
    let fresh = set.get("example.com/alpha", "v1.0.0").clone();
    for (ext, bytes) in [("info", &fresh.info), ("mod", &fresh.go_mod), ("zip", &fresh.zip)] {
        fetch_ok(&cluster, &cluster.url(a), &fresh.url_path(ext), bytes);
    }
    acknowledged.push(fresh.clone());

    let by_module = |vs: &[ModuleVersion]| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for v in vs.iter().filter(|v| !is_pseudo(v)) {
            m.entry(v.path.clone()).or_default().push(v.version.clone());
        }
        m
    };
    for (module, versions) in by_module(&acknowledged) {
        // Fill the (empty) upstream list into the catalog, then every survivor serves it itself.
        let f = get_following(&format!("{}{}", cluster.url(a), list_path(&module))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.status, 200, "list of {module}: {}", f.summary());
        let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
        for &id in &survivors {
            wait_lists_directly(&cluster, id, &module, &versions, REPLICATE);
        }
    }
    for v in &acknowledged {
        for &id in &survivors {
            wait_served_directly(&cluster, id, &v.url_path("mod"), &v.go_mod, REPLICATE);
        }
    }

    // The old primary comes back as a follower with its data, and catches up.
    cluster.node_mut(primary).restart();
    let (leader, statuses) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    assert_ne!(leader, primary, "the restarted old primary is leader again: {statuses:#?}");
    assert_eq!(statuses[&primary].role, "follower", "{statuses:#?}");
    for v in &acknowledged {
        wait_served_directly(&cluster, primary, &v.url_path("mod"), &v.go_mod, REPLICATE);
    }

    // Last, so that a failed download still lets the checks above run.
    assert!(out.success, "go mod download failed across the failover (GOPROXY {}|{}): {out}", cluster.url(a), cluster.url(b));
    for (path, version) in &program.requires {
        let v = set.get(path, version);
        assert!(cached_mod(&go, v).is_file(), "go succeeded but has no .mod of {}", v.spec());
    }
}

/// Statuses read from every node while a test runs.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, Status)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// One thread per node, so a frozen node does not stall the others.
    fn start(cluster: &Cluster) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let threads = cluster
            .ids()
            .into_iter()
            .map(|id| {
                let (stop, samples, addr) = (stop.clone(), samples.clone(), cluster.addr(id));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(s) = probe_status(addr) {
                            samples.lock().unwrap().push((Instant::now(), s));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
            })
            .collect();
        Sampler { stop, samples, threads }
    }

    fn finish(self) -> Vec<(Instant, Status)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let samples = self.samples.lock().unwrap().clone();
        samples
    }
}

#[test]
fn a_stopped_primary_cannot_commit_and_steps_down_when_it_returns() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let origin = Origin::start(set.clone());
    let cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, statuses) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let old_term = statuses[&primary].term;
    let survivors = cluster.others(primary);
    let sampler = Sampler::start(&cluster);

    cluster.node(primary).pause();
    let paused_at = Instant::now();
    let (new_primary, statuses) = cluster.wait_converged(&survivors, CONVERGE);
    eprintln!("node {new_primary} primary {:?} after node {primary} was frozen", paused_at.elapsed());
    assert!(statuses[&new_primary].term > old_term, "{statuses:#?}");

    let v = set.get("example.com/retracted", "v1.0.0");
    for &id in &survivors {
        for (ext, bytes) in [("info", &v.info), ("mod", &v.go_mod), ("zip", &v.zip)] {
            fetch_ok(&cluster, &cluster.url(id), &v.url_path(ext), bytes);
        }
    }

    cluster.node(primary).resume();
    let resumed_at = Instant::now();
    let mut last = None;
    cluster.wait_for("the resumed old primary to follow the new one", CONVERGE, || {
        let s = cluster.status(primary);
        let others: Vec<Option<u64>> = survivors.iter().map(|&id| cluster.status(id).ok().and_then(|s| s.primary_id)).collect();
        let ok = matches!(&s, Ok(s) if s.role == "follower" && s.primary_id.is_some() && s.primary_id != Some(primary)
            && others.iter().all(|o| *o == s.primary_id))
            && cluster.ready(primary);
        last = Some(s);
        ok
    });
    eprintln!(
        "old primary follows {:?} {:?} after SIGCONT",
        last.as_ref().and_then(|s| s.as_ref().ok()).and_then(|s| s.primary_id),
        resumed_at.elapsed()
    );
    let (leader, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    assert_ne!(leader, primary);
    wait_served_directly(&cluster, primary, &v.url_path("mod"), &v.go_mod, REPLICATE);

    let samples = sampler.finish();
    let mut leaders_by_term: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (_, s) in &samples {
        if s.is_leader() {
            leaders_by_term.entry(s.term).or_default().insert(s.node_id);
        }
    }
    let split: Vec<_> = leaders_by_term.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(split.is_empty(), "two nodes reported role leader in the same term: {split:?} (all: {leaders_by_term:?})");
    // Once another node was primary, the returning one must never act as primary.
    let acting_after: Vec<&Status> =
        samples.iter().filter(|(at, s)| *at >= resumed_at && s.node_id == primary && s.acting_primary).map(|(_, s)| s).collect();
    assert!(acting_after.is_empty(), "the old primary acted as primary after it was resumed: {acting_after:#?}");
    eprintln!("{} status samples, leaders by term: {leaders_by_term:?}", samples.len());
}

#[test]
fn node_with_wiped_data_dir_catches_up_through_snapshot() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let origin = Origin::start(set.clone());
    let mut cluster =
        Cluster::start(&origin.url(), ClusterOptions { env: vec![("FLOTILLA_RAFT__SNAPSHOT_EVERY", "10")], ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let follower = cluster.others(primary)[0];

    // .mod and .info of 12 versions: 24 catalog entries, so the snapshot at
    // entry 20 purges the start of the log (10 entries are kept after one).
    let versions: Vec<ModuleVersion> = set.versions().filter(|v| v.spec() != "example.com/beta@v1.4.0-beta.1").take(12).cloned().collect();
    for v in &versions {
        fetch_ok(&cluster, &cluster.url(primary), &v.url_path("mod"), &v.go_mod);
        fetch_ok(&cluster, &cluster.url(primary), &v.url_path("info"), &v.info);
    }
    let committed = cluster.status(primary).ok().and_then(|s| s.committed).unwrap_or(0);
    assert!(committed > 20, "only {committed} entries committed; the snapshot would not be needed");

    cluster.node_mut(follower).stop();
    let data = cluster.node(follower).data_dir();
    std::fs::remove_dir_all(&data).expect("wipe data dir");
    std::fs::create_dir_all(&data).expect("recreate data dir");
    // One more entry while it is away, so it also needs the log after the snapshot.
    let extra = set.get("example.com/beta", "v1.4.0-beta.1");
    fetch_ok(&cluster, &cluster.url(primary), &extra.url_path("mod"), &extra.go_mod);
    let log_start = cluster.node(follower).logs().len();
    cluster.node_mut(follower).restart();

    let (_, statuses) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    assert_eq!(statuses[&follower].role, "follower", "{statuses:#?}");
    for v in &versions {
        wait_served_directly(&cluster, follower, &v.url_path("mod"), &v.go_mod, REPLICATE);
        wait_served_directly(&cluster, follower, &v.url_path("info"), &v.info, REPLICATE);
    }
    wait_served_directly(&cluster, follower, &extra.url_path("mod"), &extra.go_mod, REPLICATE);
    let logs = cluster.node(follower).logs()[log_start..].to_owned();
    let snapshot_lines: Vec<&str> = logs.lines().filter(|l| l.to_ascii_lowercase().contains("snapshot")).collect();
    eprintln!("snapshot lines in the wiped node's log: {snapshot_lines:#?}");
    assert!(
        snapshot_lines.iter().any(|l| l.to_ascii_lowercase().contains("install")),
        "the wiped node caught up without installing a snapshot (the log was not purged?)\n{}",
        cluster.report()
    );
}

#[test]
fn wrong_secret_unknown_peer_and_foreign_data_are_refused_with_a_clear_log_line() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let origin = Origin::start(set.clone());
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions { order: vec![1, 2], ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2], CONVERGE);

    // An impostor as node 3 (the real one never started) with another secret.
    let bad_secret = write_secret(cluster.dir(), "wrong.secret", "some-other-cluster-secret-9876543210");
    let impostor_layout = Layout { secret_file: bad_secret.clone(), ..cluster.layout.clone() };
    let impostor = Node::start_on(impostor_layout.options(3, &origin.url(), &[]), cluster.addr(3));
    // The impostor campaigns (Vote to 1 and 2), the primary replicates to it
    // (AppendEntries to the impostor): both sides refuse, and the refusing
    // side says why. A caller quoting the refusal it got does not count.
    let refusals = |logs: &str| -> Vec<String> {
        logs.lines().filter(|l| l.contains("wrong cluster secret") && l.contains("refused")).map(str::to_owned).collect()
    };
    let waited = harness::wait_until(Duration::from_secs(15), || {
        [1, 2].iter().any(|&id| !refusals(&cluster.node(id).logs()).is_empty()) && !refusals(&impostor.logs()).is_empty()
    });
    for id in [1, 2] {
        let logs = cluster.node(id).logs();
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains("cluster secret")).take(4).collect();
        eprintln!("node {id} lines about the secret: {lines:#?}");
    }
    let impostor_logs = impostor.logs();
    let lines: Vec<&str> = impostor_logs.lines().filter(|l| l.contains("cluster secret")).take(4).collect();
    eprintln!("impostor lines about the secret: {lines:#?}");

    let impostor_status = probe_status(impostor.addr());
    eprintln!("impostor status: {impostor_status:?}");
    let (still, _) = cluster.wait_converged(&[1, 2], CONVERGE);
    assert_eq!(still, primary, "the impostor disturbed the cluster");
    if let Ok(s) = &impostor_status {
        assert_ne!(s.primary_id, Some(primary), "the impostor with the wrong secret follows the real primary: {s:?}");
    }
    let v = set.get("example.com/alpha", "v1.1.0");
    for id in [1, 2] {
        fetch_ok(&cluster, &cluster.url(id), &v.url_path("mod"), &v.go_mod);
    }
    drop(impostor);

    // A stranger with the right secret that is not a member (not in the raft
    // membership): it lists itself as node 4 and campaigns; the members
    // refuse it by its id.
    let mut members = cluster.layout.members.clone();
    members.push(Member {
        id: 4,
        gateway: SocketAddr::from(([127, 0, 0, 1], free_port())),
        cluster: SocketAddr::from(([127, 0, 0, 1], free_port())),
    });
    let stranger_layout = Layout { members, secret_file: cluster.layout.secret_file.clone(), tls: None };
    let stranger = Node::start_on(stranger_layout.options(4, &origin.url(), &[]), stranger_layout.member(4).gateway);
    let unknown = |id: u64| cluster.node(id).logs().contains("refused cluster RPC: node id is not a cluster member");
    let refused_stranger = harness::wait_until(Duration::from_secs(15), || unknown(1) || unknown(2));
    let (still, _) = cluster.wait_converged(&[1, 2], CONVERGE);
    assert_eq!(still, primary, "the stranger disturbed the cluster");
    drop(stranger);
    assert!(refused_stranger, "neither node 1 nor 2 logged refusing node 4, which is not among cluster.peers\n{}", cluster.report());

    // A data dir of this cluster given to a node of another cluster.
    let victim = cluster.others(primary)[0];
    cluster.node_mut(victim).stop();
    let data = cluster.node(victim).data_dir();
    let before = file_sizes(&data);
    let foreign = Layout::new(1, bad_secret);
    let env = foreign.env(1);
    let run = run_serve_once(foreign.member(1).gateway, &data, &origin.url(), &env, Duration::from_secs(30));
    let after = file_sizes(&data);
    assert!(
        matches!(run.status, Some(s) if !s.success()),
        "a node on another cluster's data dir did not exit with an error ({:?}); output:\n{}",
        run.status,
        run.output
    );
    assert!(run.output.contains("belongs to cluster"), "no `belongs to cluster` in the output:\n{}", run.output);
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| format!("{}: {:?} -> {:?}", p.display(), before.get(p), after.get(p)))
        .collect();
    // RocksDB's own recovery on open (WAL flushed to new SSTs, a new
    // MANIFEST and OPTIONS, LOG rotated) rewrites files under db/ without
    // changing what they hold; everything else must be byte-for-byte as it
    // was, and what db/ holds is checked below by using it.
    eprintln!("files the refused start changed: {changed:#?}");
    let outside_db: Vec<&String> = changed.iter().filter(|c| !c.starts_with("db/")).collect();
    assert!(outside_db.is_empty(), "the refused start changed the data dir outside db/: {outside_db:#?}\noutput:\n{}", run.output);

    // It did not claim the data dir: a second try is refused the same way.
    let again = run_serve_once(foreign.member(1).gateway, &data, &origin.url(), &env, Duration::from_secs(30));
    assert!(
        matches!(again.status, Some(s) if !s.success()) && again.output.contains("belongs to cluster"),
        "second start with the foreign secret ({:?}):\n{}",
        again.status,
        again.output
    );

    // The rightful node still starts on it and has its data.
    cluster.node_mut(victim).restart();
    cluster.wait_converged(&[1, 2], CONVERGE);
    wait_served_directly(&cluster, victim, &v.url_path("mod"), &v.go_mod, REPLICATE);

    // Last, so that the data-dir checks run either way.
    assert!(
        waited,
        "no refusal logged with `wrong cluster secret` by node 1 or 2 (refusing the impostor's votes) and by the impostor \
         (refusing the primary's appends) within 15 s; the lines about the secret are printed above"
    );
}

#[test]
fn a_restarted_follower_is_ready_only_once_it_has_caught_up() {
    let _serial = serial();
    let set = ModuleSet::standard();
    let origin = Origin::start(set.clone());
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    // The primary thins out these lines per peer (one per 30 s): a follower
    // it already called unreachable while the cluster formed would be
    // quiet now, so stop one it has not, or wait out the quiet period.
    let complained = |id: u64| {
        let logs = cluster.node(primary).logs();
        logs.lines().any(|l| l.contains("Unreachable") && l.contains(&format!("target={id} ")))
    };
    let follower = match cluster.others(primary).into_iter().find(|&id| !complained(id)) {
        Some(id) => id,
        None => {
            std::thread::sleep(Duration::from_secs(31));
            cluster.others(primary)[0]
        }
    };
    let log_start = cluster.node(primary).logs().len();
    cluster.node_mut(follower).stop();
    // openraft complains about the unreachable peer on every heartbeat and
    // retry; the node keeps one line per kind every 30 s.
    std::thread::sleep(Duration::from_secs(3));
    let logs = cluster.node(primary).logs()[log_start..].to_owned();
    let unreachable: Vec<&str> = logs.lines().filter(|l| l.contains("Unreachable")).collect();
    assert!(!unreachable.is_empty(), "the primary did not log losing node {follower}:\n{logs}");
    assert!(
        unreachable.len() <= 6,
        "{} lines about the unreachable node {follower} in 3 s:\n{}",
        unreachable.len(),
        unreachable.join("\n")
    );
    for v in set.versions().take(10) {
        fetch_ok(&cluster, &cluster.url(primary), &v.url_path("mod"), &v.go_mod);
        fetch_ok(&cluster, &cluster.url(primary), &v.url_path("info"), &v.info);
    }
    let committed = cluster.status(primary).ok().and_then(|s| s.committed).expect("primary's committed index");
    cluster.node_mut(follower).restart();

    // `ready` and `last_applied` come from one status answer: ready must
    // never be claimed with a log the primary had already moved past.
    let mut seen_unready = false;
    cluster.wait_for("the restarted follower to become ready", CONVERGE, || {
        let Ok(r) = cluster.try_get(follower, "/api/v1/status") else { return false };
        let Ok(status) = serde_json::from_slice::<serde_json::Value>(&r.body) else { return false };
        let c = &status["cluster"];
        if c["ready"] != serde_json::Value::Bool(true) {
            seen_unready = true;
            return false;
        }
        let applied = c["last_applied"].as_u64().unwrap_or(0);
        assert!(applied >= committed, "node {follower} claims to be ready with {applied} entries applied of {committed} committed: {c}");
        true
    });
    assert!(cluster.ready(follower), "status says ready but /readyz does not");
    eprintln!("follower {follower} reported not ready before catching up: {seen_unready}");
}
