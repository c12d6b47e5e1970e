//! The repository's `docker-compose.yml` on real containers: three nodes and
//! the HAProxy front on a private Docker network, the real go command in a
//! container on the same network with `GOPROXY=http://front:8080`, and a fake
//! origin on the network's gateway address. Nodes are killed (`docker
//! kill`), cut off (`docker network disconnect`), stopped and restarted.
//!
//! Needs a Docker engine, root and `debootstrap` (the base image is built
//! once without a registry and cached); without an engine every test prints
//! "skipped: no Docker engine" and passes. The tests run one at a time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use harness::compose::{Deployment, NODES};
use harness::docker::{engine_available, Run};
use harness::{wait_until, ModuleSet, ModuleVersion, Origin, Program};

/// Containers start, elect and pass their health checks (2 cores, shared).
const CONVERGE: Duration = Duration::from_secs(90);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The deployment in front of an origin serving `modules`, converged, with
/// the front serving and the go client started; `None` without an engine.
fn deploy(modules: ModuleSet) -> Option<(Deployment, Origin)> {
    if !engine_available() {
        println!("skipped: no Docker engine (`docker info` failed)");
        return None;
    }
    let mut d = Deployment::new();
    let origin = Origin::start_on(modules, d.gateway_ip());
    d.up(&origin.url());
    d.wait_converged(&NODES, CONVERGE);
    d.start_client();
    let front = wait_until(CONVERGE, || d.client("curl -fsS -o /dev/null http://front:8080/serving").success);
    assert!(front, "the front never served /serving\n{}", d.report());
    Some((d, origin))
}

/// The standard modules plus `n` single-version modules nobody asked for yet.
fn modules_with_load(n: usize) -> (ModuleSet, Vec<ModuleVersion>) {
    let mut set = ModuleSet::standard();
    let load: Vec<ModuleVersion> =
        (0..n).map(|i| ModuleSet::make_version(&format!("example.com/load/m{i:03}"), &format!("m{i:03}"), "v1.0.0")).collect();
    for v in &load {
        set.insert(v.clone());
    }
    (set, load)
}

fn specs(versions: &[ModuleVersion]) -> Vec<String> {
    versions.iter().map(ModuleVersion::spec).collect()
}

fn standard_specs() -> Vec<String> {
    specs(&ModuleSet::standard().versions().cloned().collect::<Vec<_>>())
}

fn assert_ok(d: &Deployment, what: &str, run: &Run) {
    assert!(run.success, "{what} failed:\n{}\n{}\n{}", run.stdout, run.stderr, d.report());
}

/// Go commands downloading at once during a disruption.
const LOADERS: usize = 2;

/// `go mod download` runs in a loop on [`LOADERS`] threads until stopped.
struct Load<'a> {
    results: Mutex<Vec<(String, Run)>>,
    next: AtomicUsize,
    stop: AtomicBool,
    d: &'a Deployment,
}

impl<'a> Load<'a> {
    fn new(d: &'a Deployment) -> Self {
        Load { results: Mutex::new(Vec::new()), next: AtomicUsize::new(0), stop: AtomicBool::new(false), d }
    }

    /// Starts the loaders in `scope`: each downloads `pick(i)` for the next
    /// unused i = 0, 1, … until [`Load::stop`].
    fn start<'s>(&'s self, scope: &'s std::thread::Scope<'s, '_>, pick: &'s (impl Fn(usize) -> Vec<String> + Sync)) {
        for _ in 0..LOADERS {
            scope.spawn(move || {
                while !self.stop.load(Ordering::Relaxed) {
                    let specs = pick(self.next.fetch_add(1, Ordering::Relaxed));
                    let run = self.d.go_download(&specs);
                    self.results.lock().unwrap_or_else(|p| p.into_inner()).push((specs.join(" "), run));
                }
            });
        }
    }

    fn count(&self) -> usize {
        self.results.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits until `more` downloads finished after the current ones.
    fn wait_more(&self, more: usize, what: &str) {
        let target = self.count() + more;
        let done = wait_until(CONVERGE, || self.count() >= target);
        assert!(done, "the download load stalled ({what})\n{}", self.d.report());
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the load when dropped, so a failing assertion does not leave
    /// the scoped load thread running forever.
    fn stop_on_drop(&self) -> StopOnDrop<'_, 'a> {
        StopOnDrop(self)
    }

    /// Panics with every failed run; returns the downloaded specs.
    fn assert_all_ok(&self) -> Vec<String> {
        let results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        let failed: Vec<String> =
            results.iter().filter(|(_, r)| !r.success).map(|(s, r)| format!("go mod download {s}:\n{}{}", r.stdout, r.stderr)).collect();
        assert!(failed.is_empty(), "{} of {} downloads failed:\n{}\n{}", failed.len(), results.len(), failed.join("\n"), self.d.report());
        eprintln!("{} go mod download runs, none failed", results.len());
        results.iter().map(|(s, _)| s.clone()).collect()
    }
}

struct StopOnDrop<'l, 'a>(&'l Load<'a>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[test]
fn compose_up_forms_a_cluster_and_go_builds_through_the_front() {
    let _serial = serial();
    let Some((d, origin)) = deploy(ModuleSet::standard()) else { return };
    let program = Program::standard();
    std::fs::write(d.work_dir().join("go.mod"), program.go_mod()).expect("write go.mod");
    std::fs::write(d.work_dir().join("main.go"), program.main_go()).expect("write main.go");
    let built = d.client("go mod tidy && go build -o /tmp/app . && /tmp/app");
    assert_ok(&d, "go mod tidy && go build in the client container", &built);
    assert_eq!(built.stdout, program.expected_output);
    for (module, version) in &program.requires {
        let v = origin.modules().get(module, version).clone();
        assert!(origin.count(&v.url_path("zip")) >= 1, "{} did not come from the origin through the mirror", v.spec());
    }
    let healthy = wait_until(CONVERGE, || NODES.iter().all(|n| d.health(n) == "healthy"));
    assert!(healthy, "compose health checks: {:?}\n{}", NODES.map(|n| d.health(n)), d.report());
}

#[test]
fn killing_the_primary_during_downloads_fails_over_without_a_failed_download_and_it_rejoins() {
    let _serial = serial();
    let (modules, load) = modules_with_load(400);
    let Some((d, origin)) = deploy(modules) else { return };
    let primary = d.wait_converged(&NODES, CONVERGE);
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != primary).collect();
    let downloads = Load::new(&d);
    let pick = |i: usize| vec![load[i % load.len()].spec()];
    std::thread::scope(|s| {
        let _stop = downloads.stop_on_drop();
        downloads.start(s, &pick);
        downloads.wait_more(3, "before the kill");
        d.docker_on(&["kill"], &primary);
        let new_primary = d.wait_converged(&others, CONVERGE);
        assert_ne!(new_primary, primary);
        downloads.wait_more(5, "after the failover");
        d.docker_on(&["start"], &primary);
        d.wait_converged(&NODES, CONVERGE);
        downloads.wait_more(2, "after the restart");
        downloads.stop();
    });
    let acknowledged = downloads.assert_all_ok();
    assert!(acknowledged.len() >= 10, "only {} downloads ran", acknowledged.len());

    // Every acknowledged version is in the catalog of every node: with the
    // origin gone, each node (the restarted one too) still serves it.
    origin.stop();
    for spec in &acknowledged {
        let v = load.iter().find(|v| &v.spec() == spec).expect("a load version");
        for node in NODES {
            for (ext, bytes) in [("mod", &v.go_mod), ("zip", &v.zip)] {
                let got = d.get(node, &v.url_path(ext)).unwrap_or_else(|e| panic!("{node} {spec} {ext}: {e}\n{}", d.report()));
                assert_eq!(got.status, 200, "{node} lost acknowledged {spec} ({ext}): {}\n{}", got.summary(), d.report());
                assert!(&got.body == bytes, "{node} serves other bytes for {spec} ({ext})");
            }
        }
    }
}

#[test]
fn a_cut_off_primary_steps_down_while_the_majority_and_the_front_keep_serving() {
    let _serial = serial();
    let (modules, load) = modules_with_load(2);
    let Some((d, _origin)) = deploy(modules) else { return };
    assert_ok(&d, "warming the mirror", &d.go_download(&standard_specs()));
    let primary = d.wait_converged(&NODES, CONVERGE);
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != primary).collect();

    d.disconnect(&primary);
    let new_primary = d.wait_converged(&others, CONVERGE);
    assert_ne!(new_primary, primary);
    let stepped_down = wait_until(CONVERGE, || {
        let (code, body) = d.curl_inside(&primary, "/api/v1/status");
        let acting = serde_json::from_str::<serde_json::Value>(&body).ok().map(|s| s["cluster"]["acting_primary"] == true);
        code == 200 && acting == Some(false) && d.curl_inside(&primary, "/readyz").0 == 503
    });
    assert!(stepped_down, "the cut-off primary still acts as primary or says it is ready\n{}", d.report());
    let (code, body) = d.curl_inside(&primary, &load[0].url_path("info"));
    assert_eq!(code, 503, "a miss on the cut-off node: {body}");

    assert_ok(&d, "cached downloads through the front during the partition", &d.go_download(&standard_specs()));
    assert_ok(&d, "a miss through the front during the partition", &d.go_download(&[load[1].spec()]));

    d.connect(&primary);
    d.wait_converged(&NODES, CONVERGE);
    let converged = wait_until(CONVERGE, || {
        let Ok(leader) = d.status(&new_primary) else { return false };
        d.status(&primary).is_ok_and(|s| s.last_applied.is_some() && s.last_applied >= leader.committed)
    });
    assert!(converged, "{primary} did not apply what the cluster committed during the partition\n{}", d.report());
}

#[test]
fn with_two_of_three_nodes_stopped_cached_modules_still_download_through_the_front() {
    let _serial = serial();
    let (modules, load) = modules_with_load(1);
    let Some((d, origin)) = deploy(modules) else { return };
    assert_ok(&d, "warming the mirror", &d.go_download(&standard_specs()));
    let shas: Vec<String> = ModuleSet::standard().versions().map(ModuleVersion::zip_sha256).collect();
    for node in NODES {
        let all_local = wait_until(CONVERGE, || {
            shas.iter().all(|sha| {
                let r = d.get(node, &format!("/api/v1/blobs/{sha}"));
                r.ok().and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok()).is_some_and(|b| b["local"] == true)
            })
        });
        assert!(all_local, "{node} never held every zip\n{}", d.report());
    }
    let primary = d.wait_converged(&NODES, CONVERGE);
    let follower = NODES.iter().copied().find(|n| *n != primary).expect("a follower");
    let survivor = NODES.iter().copied().find(|n| *n != primary && *n != follower).expect("a third node");
    for node in [primary.as_str(), follower] {
        d.docker_on(&["stop", "-t", "5"], node);
    }
    let alone = wait_until(CONVERGE, || d.get(survivor, "/readyz").is_ok_and(|r| r.status == 503));
    assert!(alone, "{survivor} still says it can take writes\n{}", d.report());
    assert_ok(&d, "cached downloads with two nodes down", &d.go_download(&standard_specs()));
    // `@latest` resolves through the survivor's list of what it holds.
    let get = d.client(
        "cd $(mktemp -d) && export GOMODCACHE=$(mktemp -d) && printf 'module example.com/app\\n\\ngo 1.18\\n' > go.mod \
         && go get example.com/alpha@latest && go list -m -f '{{.Version}}' example.com/alpha",
    );
    assert_ok(&d, "go get example.com/alpha@latest with two nodes down", &get);
    assert_eq!(get.stdout.trim(), "v1.2.0");

    // Nothing new can be committed: the go command gets a 503, not a hang.
    let miss = d.go_download(&[load[0].spec()]);
    assert!(!miss.success && miss.stderr.contains("503 Service Unavailable"), "a miss with two nodes down: {}{}", miss.stdout, miss.stderr);
    assert_eq!(origin.count(&load[0].url_path("zip")), 0, "the survivor fetched a version it cannot commit");
}

#[test]
fn a_rolling_restart_under_download_load_fails_no_download() {
    let _serial = serial();
    let Some((d, _origin)) = deploy(ModuleSet::standard()) else { return };
    let all = standard_specs();
    assert_ok(&d, "warming the mirror", &d.go_download(&all));
    let downloads = Load::new(&d);
    let pick = |i: usize| vec![all[i % all.len()].clone()];
    std::thread::scope(|s| {
        let _stop = downloads.stop_on_drop();
        downloads.start(s, &pick);
        downloads.wait_more(1, "before the restarts");
        for node in NODES {
            d.docker_on(&["restart", "-t", "20"], node);
            d.wait_converged(&NODES, CONVERGE);
            downloads.wait_more(1, &format!("after restarting {node}"));
        }
        downloads.stop();
    });
    let runs = downloads.assert_all_ok();
    assert!(runs.len() >= 6, "only {} downloads ran", runs.len());
}
