//! Issue 19: `/api/v1/status`, `/metrics` and `@v/list` at 200,000 versions.
//! The catalog is written straight into the members' data directories
//! (`harness::bulk`), then one member is polled by 16 clients at once:
//! every answer must come quickly and the node's resident memory must not
//! climb while it answers (status and metrics must never load the whole
//! catalog per request, nor once per concurrent caller).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use harness::bulk::BulkCatalog;
use harness::cluster::{Cluster, ClusterOptions};
use harness::{wait_for, ModuleSet, Origin};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(60);
const CLIENTS: usize = 16;
const POLL_FOR: Duration = Duration::from_secs(10);
/// Generous for a loaded CI machine; a whole-catalog scan per answer takes seconds.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
const RSS_GROWTH_MAX: u64 = 64 << 20;

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS value");
    kib << 10
}

/// `cluster.replication.nodes` of node `id`'s status: member id → missing blobs.
fn lag(cluster: &Cluster, id: u64) -> Option<Vec<(String, u64)>> {
    let r = cluster.try_get(id, "/api/v1/status").ok()?;
    let status: Value = serde_json::from_slice(&r.body).ok()?;
    let nodes = status["cluster"]["replication"]["nodes"].as_object()?.clone();
    Some(nodes.iter().map(|(id, lag)| (id.clone(), lag["missing_blobs"].as_u64().unwrap_or(u64::MAX))).collect())
}

#[test]
fn status_metrics_and_lists_stay_fast_with_flat_memory_at_200k_versions() {
    let bulk = BulkCatalog { modules: 100, versions_per_module: 2_000, zip_size: 40_000 };
    let origin = Origin::start(ModuleSet::default());
    let mut cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { env: vec![("FLOTILLA_REPLICATION__SCRUB_RATE", "0"), ("FLOTILLA_CACHE__LIST_TTL", "1h")], ..Default::default() },
    );
    let ids = cluster.ids();
    cluster.wait_converged(&ids, CONVERGE);
    for &id in &ids {
        cluster.node_mut(id).stop();
    }
    let writing = Instant::now();
    for &id in &ids {
        bulk.write(&cluster.node(id).data_dir(), &ids);
    }
    eprintln!("wrote {} versions into {} data directories in {:?}", bulk.count(), ids.len(), writing.elapsed());

    let log_starts: Vec<usize> = ids.iter().map(|&id| cluster.node(id).logs().len()).collect();
    for &id in &ids {
        cluster.node_mut(id).restart();
    }
    let (primary, _) = cluster.wait_converged(&ids, CONVERGE);
    for (&id, &start) in ids.iter().zip(&log_starts) {
        let node = cluster.node(id);
        wait_for(&format!("node {id}'s first anti-entropy pass over the bulk catalog"), Duration::from_secs(300), || {
            node.logs().get(start..).is_some_and(|l| l.contains("anti-entropy pass"))
        });
    }
    let counting = Instant::now();
    let expected: Vec<(String, u64)> = ids.iter().map(|id| (id.to_string(), 0)).collect();
    for &id in &ids {
        wait_for(&format!("node {id} to report every member's lag (none missing)"), Duration::from_secs(300), || {
            lag(&cluster, id).as_ref() == Some(&expected)
        });
    }
    eprintln!("lag reported by every node {:?} after the anti-entropy passes", counting.elapsed());

    let polled = cluster.node(primary);
    let pid = polled.pid().expect("the primary runs");
    let addr = polled.addr();
    let before = rss(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let deadline = Instant::now() + POLL_FOR;
                let (mut slowest, mut answers, mut failures) = (Duration::ZERO, 0u64, Vec::new());
                let mut turn = c;
                while Instant::now() < deadline {
                    let path = if turn % 2 == 0 { "/api/v1/status" } else { "/metrics" };
                    turn += 1;
                    let asked = Instant::now();
                    match harness::http::get_with_timeout(addr, path, Duration::from_secs(60)) {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failures.push(format!("{path}: {} {}", r.status, r.text())),
                        Err(e) => failures.push(format!("{path}: {e}")),
                    }
                    slowest = slowest.max(asked.elapsed());
                    answers += 1;
                }
                (slowest, answers, failures)
            })
        })
        .collect();
    let (mut slowest, mut answers, mut failures) = (Duration::ZERO, 0, Vec::new());
    for client in clients {
        let (s, a, f) = client.join().expect("polling client");
        slowest = slowest.max(s);
        answers += a;
        failures.extend(f);
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("rss sampler");
    let (peak, after) = (peak.load(Ordering::Relaxed), rss(pid));
    eprintln!(
        "{CLIENTS} clients polled status and metrics for {POLL_FOR:?}: {answers} answers, slowest {slowest:?}; \
         RSS before {} MiB, peak {} MiB, after {} MiB",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(failures.is_empty(), "failed answers: {:?}", &failures[..failures.len().min(5)]);
    assert!(slowest <= ANSWER_WITHIN, "the slowest status/metrics answer took {slowest:?} (bound {ANSWER_WITHIN:?})");
    assert!(
        peak.saturating_sub(before) <= RSS_GROWTH_MAX,
        "resident memory grew from {} MiB to {} MiB while polling (bound {} MiB)",
        before >> 20,
        peak >> 20,
        RSS_GROWTH_MAX >> 20
    );

    // The lag is still right, and the per-member metrics carry it.
    assert_eq!(lag(&cluster, primary), Some(expected), "the primary's lag after polling");
    let metrics = cluster.get(primary, "/metrics").text();
    for id in &ids {
        assert!(metrics.contains(&format!("flotilla_replication_missing_blobs{{node=\"{id}\"}} 0")), "metrics lack node {id}'s lag");
    }

    // A module with 2,000 versions lists them all, quickly, on every node.
    for &id in &ids {
        let path = format!("/{}/@v/list", bulk.module(7));
        let asked = Instant::now();
        let r = cluster.get(id, &path);
        let took = asked.elapsed();
        assert_eq!(r.status, 200, "{path} via node {id}: {}", r.text());
        let listed = r.text().lines().count();
        assert_eq!(listed, bulk.versions_per_module, "{path} via node {id} lists {listed} versions");
        eprintln!("{path} via node {id}: {listed} versions in {took:?}");
        assert!(took <= ANSWER_WITHIN, "{path} via node {id} took {took:?}");
    }
}
