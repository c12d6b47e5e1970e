//! The blob replicator across three real `flotilla` processes: every zip on
//! every node with placement recorded through raft, a transfer resumed after
//! `kill -9`, catch-up after a stop and after a wiped data dir, corrupt
//! copies repaired (by a read and by scrub), `min_copies = 2` surviving the
//! loss of the primary, the `Blobs` RPC's refusals, and purged versions
//! leaving every node (`flotillactl purge`).
//!
//! The tests run one at a time (a lock), like the cluster suite.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use harness::cluster::{get_following, Cluster, ClusterOptions};
use harness::ctl::{flotillactl, ADMIN_TOKEN};
use harness::modules::{LARGE_MODULE, LARGE_VERSION};
use harness::{sha256_hex, ModuleSet, ModuleVersion, Origin};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(20);
/// Blobs reaching followers that are up (generous: two shared cores).
const REPLICATE: Duration = Duration::from_secs(60);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `count` small versions of `example.com/rep/m<N>`, plus whatever `base` has.
fn many_versions(base: ModuleSet, prefix: &str, count: usize) -> (ModuleSet, Vec<ModuleVersion>) {
    let mut set = base;
    let mut made = Vec::new();
    for n in 0..count {
        let v = ModuleSet::make_version(&format!("example.com/rep/{prefix}{n}"), &format!("{prefix}{n}"), "v1.0.0");
        set.insert(v.clone());
        made.push(v);
    }
    (set, made)
}

/// `/api/v1/blobs/<sha>` of node `id`.
fn blob(cluster: &Cluster, id: u64, sha: &str) -> Option<Value> {
    let r = cluster.try_get(id, &format!("/api/v1/blobs/{sha}")).ok()?;
    if r.status != 200 {
        return None;
    }
    serde_json::from_slice(&r.body).ok()
}

fn is_local(cluster: &Cluster, id: u64, sha: &str) -> bool {
    blob(cluster, id, sha).is_some_and(|b| b["local"] == Value::Bool(true))
}

fn placement(cluster: &Cluster, id: u64, sha: &str) -> Vec<u64> {
    blob(cluster, id, sha).and_then(|b| b["nodes"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect())).unwrap_or_default()
}

/// `cluster.replication` of node `id`'s status.
fn replication(cluster: &Cluster, id: u64) -> Value {
    let r = cluster.get(id, "/api/v1/status");
    let status: Value = serde_json::from_slice(&r.body).expect("status JSON");
    status["cluster"]["replication"].clone()
}

/// Fetches every zip of `versions` through node `via` (following redirects).
fn warm(cluster: &Cluster, via: u64, versions: &[ModuleVersion]) {
    for v in versions {
        let path = v.url_path("zip");
        let f = get_following(&format!("{}{path}", cluster.url(via))).unwrap_or_else(|e| panic!("{e}\n{}", cluster.report()));
        assert_eq!(f.status, 200, "GET {path} via node {via}: {}\n{}", f.summary(), cluster.report());
        assert!(f.body == v.zip, "GET {path} via node {via}: bytes differ from the origin's");
    }
}

/// Waits until node `id` holds a verified copy of every zip of `versions`
/// (its own report and the file on disk hashing right).
fn wait_holds_all(cluster: &Cluster, id: u64, versions: &[ModuleVersion], timeout: Duration) {
    let mut missing = Vec::new();
    let ok = harness::wait_until(timeout, || {
        missing = versions.iter().filter(|v| !is_local(cluster, id, &v.zip_sha256())).map(ModuleVersion::spec).collect();
        missing.is_empty()
    });
    assert!(ok, "node {id} still lacks {} blobs after {timeout:?}: {missing:?}\n{}", missing.len(), cluster.report());
    for v in versions {
        let sha = v.zip_sha256();
        let on_disk = std::fs::read(cluster.node(id).blob_path(&sha)).unwrap_or_default();
        assert_eq!(sha256_hex(&on_disk), sha, "node {id}'s file for {} does not hash to its name", v.spec());
    }
}

fn wait_placement(cluster: &Cluster, id: u64, versions: &[ModuleVersion], nodes: &[u64], timeout: Duration) {
    let mut wrong = Vec::new();
    let ok = harness::wait_until(timeout, || {
        wrong = versions
            .iter()
            .map(|v| (v.spec(), placement(cluster, id, &v.zip_sha256())))
            .filter(|(_, p)| !nodes.iter().all(|n| p.contains(n)))
            .collect();
        wrong.is_empty()
    });
    assert!(ok, "node {id}'s placement does not list {nodes:?} for: {wrong:?}\n{}", cluster.report());
}

#[test]
fn warm_fifty_versions_and_every_node_holds_every_blob_with_placement() {
    let _serial = serial();
    let (set, versions) = many_versions(ModuleSet::default(), "m", 52);
    let origin = Origin::start(set);
    let cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    warm(&cluster, primary, &versions);
    for id in cluster.ids() {
        wait_holds_all(&cluster, id, &versions, REPLICATE);
    }
    for id in cluster.ids() {
        wait_placement(&cluster, id, &versions, &[1, 2, 3], REPLICATE);
    }
    // Every zip came from upstream once: the followers pulled from peers.
    for v in &versions {
        assert_eq!(origin.count(&v.url_path("zip")), 1, "upstream fetches of {}", v.url_path("zip"));
    }
    let lag = &replication(&cluster, primary)["nodes"];
    for id in ["1", "2", "3"] {
        assert_eq!(lag[id]["missing_blobs"], 0, "node {id} still missing blobs per the primary's status: {lag}");
    }
    let metrics = cluster.get(primary, "/metrics").text();
    assert!(metrics.contains("flotilla_replication_missing_blobs{node=\"2\"} 0"), "metrics lack the per-node lag:\n{metrics}");
    assert!(metrics.contains("flotilla_replication_node_oldest_missing_seconds{node=\"3\"}"), "no per-node age:\n{metrics}");
}

#[test]
fn a_follower_killed_mid_transfer_resumes_from_its_offset() {
    let _serial = serial();
    let set = ModuleSet::default().with_large(12 << 20);
    let large = set.get(LARGE_MODULE, LARGE_VERSION).clone();
    let size = large.zip.len() as u64;
    let sha = large.zip_sha256();
    let origin = Origin::start(set);
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    // The slow follower: 2 MiB/s of incoming replication.
    let slow = *cluster.others(primary).last().expect("a follower");
    cluster.node_mut(slow).options_mut().env.push(("FLOTILLA_REPLICATION__BANDWIDTH_LIMIT".into(), "2MiB".into()));
    cluster.node_mut(slow).restart();
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let primary = cluster.wait_converged(&[1, 2, 3], CONVERGE).0;
    assert_ne!(primary, slow, "the throttled node became primary; it would not pull anything");

    warm(&cluster, primary, std::slice::from_ref(&large));
    let partial = cluster.node(slow).partial_path(&sha);
    let quarter = size / 4;
    cluster.wait_for("a quarter of the blob in the slow follower's partial file", REPLICATE, || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > quarter)
    });
    cluster.node_mut(slow).kill9();
    let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(kept > quarter && kept < size, "partial file after kill -9: {kept} of {size} bytes");

    let log_start = cluster.node(slow).logs().len();
    cluster.node_mut(slow).restart();
    wait_holds_all(&cluster, slow, std::slice::from_ref(&large), REPLICATE);

    let logs = cluster.node(slow).logs()[log_start..].to_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("resuming blob transfer") && l.contains(&sha))
        .unwrap_or_else(|| panic!("the restarted node did not resume the transfer; its log:\n{logs}"));
    let offset: u64 = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("offset="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {line:?}"));
    assert!(offset > 0 && offset <= kept, "resumed at {offset}, the partial file had {kept} bytes");
    let r = replication(&cluster, slow);
    assert_eq!(r["received_bytes"], size - offset, "bytes re-sent after the restart (resumed at {offset} of {size}): {r}");
    assert_eq!(r["resumed"], 1, "{r}");
    assert!(!partial.exists(), "the partial file is left behind after the blob was stored");
}

#[test]
fn a_stopped_follower_catches_up_after_restart() {
    let _serial = serial();
    let (set, first) = many_versions(ModuleSet::default(), "a", 3);
    let (set, later) = many_versions(set, "b", 10);
    let origin = Origin::start(set);
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let follower = cluster.others(primary)[0];
    warm(&cluster, primary, &first);
    wait_holds_all(&cluster, follower, &first, REPLICATE);

    cluster.node_mut(follower).stop();
    warm(&cluster, primary, &later);
    cluster.node_mut(follower).restart();
    wait_holds_all(&cluster, follower, &later, REPLICATE);
    wait_placement(&cluster, primary, &later, &[1, 2, 3], REPLICATE);
}

#[test]
fn a_wiped_follower_rejoins_through_a_snapshot_and_pulls_every_blob_again() {
    let _serial = serial();
    let (set, versions) = many_versions(ModuleSet::default(), "w", 10);
    let origin = Origin::start(set);
    let mut cluster =
        Cluster::start(&origin.url(), ClusterOptions { env: vec![("FLOTILLA_RAFT__SNAPSHOT_EVERY", "5")], ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let follower = cluster.others(primary)[0];
    warm(&cluster, primary, &versions);
    wait_holds_all(&cluster, follower, &versions, REPLICATE);

    cluster.node_mut(follower).stop();
    let data = cluster.node(follower).data_dir();
    std::fs::remove_dir_all(&data).expect("wipe data dir");
    std::fs::create_dir_all(&data).expect("recreate data dir");
    let log_start = cluster.node(follower).logs().len();
    // First with its pulls stalled (1 byte/s): placement must stop listing
    // it for the blobs it lost, and the primary's lag must show them.
    const LIMIT: &str = "FLOTILLA_REPLICATION__BANDWIDTH_LIMIT";
    cluster.node_mut(follower).options_mut().env.push((LIMIT.into(), "1".into()));
    cluster.node_mut(follower).restart();
    let dropped = || {
        versions.iter().all(|v| {
            let nodes = placement(&cluster, primary, &v.zip_sha256());
            nodes.contains(&primary) && !nodes.contains(&follower)
        })
    };
    let lag = || replication(&cluster, primary)["nodes"][follower.to_string()]["missing_blobs"].clone();
    cluster.wait_for(&format!("placement and lag to show the wiped node {follower} without its blobs"), REPLICATE, || {
        dropped() && lag() == versions.len()
    });
    let logs = cluster.node(follower).logs()[log_start..].to_owned();
    assert!(logs.contains("installing catalog snapshot"), "the wiped node did not catch up through a snapshot:\n{logs}");

    cluster.node_mut(follower).kill9();
    cluster.node_mut(follower).options_mut().env.retain(|(k, _)| k != LIMIT);
    cluster.node_mut(follower).restart();
    wait_holds_all(&cluster, follower, &versions, REPLICATE);
    wait_placement(&cluster, primary, &versions, &[1, 2, 3], REPLICATE);
    assert_eq!(replication(&cluster, follower)["replicated_blobs"], versions.len(), "{}", cluster.report());
}

/// Flips one byte of node `id`'s copy of `sha`, keeping its size.
fn corrupt(cluster: &Cluster, id: u64, sha: &str) {
    let path = cluster.node(id).blob_path(sha);
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write corrupted blob");
}

#[test]
fn a_corrupt_follower_copy_is_never_served_and_is_repaired_from_a_peer() {
    let _serial = serial();
    let (set, versions) = many_versions(ModuleSet::default(), "c", 2);
    let origin = Origin::start(set);
    let cluster =
        Cluster::start(&origin.url(), ClusterOptions { env: vec![("FLOTILLA_REPLICATION__SCRUB_INTERVAL", "1s")], ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let follower = cluster.others(primary)[0];
    warm(&cluster, primary, &versions);
    wait_holds_all(&cluster, follower, &versions, REPLICATE);
    origin.stop(); // repairs must come from peers

    // Read path: the next request finds the damage and serves a good copy.
    let read = &versions[0];
    corrupt(&cluster, follower, &read.zip_sha256());
    let r = cluster.get(follower, &read.url_path("zip"));
    assert_eq!(r.status, 200, "zip with a corrupt local copy on node {follower}: {}\n{}", r.summary(), cluster.report());
    assert!(r.body == read.zip, "node {follower} served bytes that differ from the zip");

    // Scrub path: nobody reads it; the scrub finds and repairs it.
    let scrubbed = &versions[1];
    corrupt(&cluster, follower, &scrubbed.zip_sha256());
    let path = cluster.node(follower).blob_path(&scrubbed.zip_sha256());
    cluster.wait_for("scrub to repair the corrupt blob", REPLICATE, || {
        std::fs::read(&path).is_ok_and(|b| sha256_hex(&b) == scrubbed.zip_sha256())
    });
    wait_holds_all(&cluster, follower, &versions, REPLICATE);
    let logs = cluster.node(follower).logs();
    assert_eq!(logs.matches("corrupt blob: content does not match").count(), 2, "{}", cluster.report());
    assert!(replication(&cluster, follower)["corrupt_found"].as_u64() >= Some(2));
}

#[test]
fn with_min_copies_two_the_zip_survives_killing_the_primary_right_after_it_answered() {
    let _serial = serial();
    let (set, versions) = many_versions(ModuleSet::default(), "k", 1);
    let v = &versions[0];
    let origin = Origin::start(set);
    let mut cluster =
        Cluster::start(&origin.url(), ClusterOptions { env: vec![("FLOTILLA_REPLICATION__MIN_COPIES", "2")], ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    warm(&cluster, primary, versions.as_slice());
    let held = placement(&cluster, primary, &v.zip_sha256());
    assert!(held.len() >= 2, "the primary answered 200 with the zip on nodes {held:?} only");
    origin.stop(); // the survivors cannot fetch it again
    cluster.node_mut(primary).kill9();

    let survivors = cluster.others(primary);
    cluster.wait_converged(&survivors, CONVERGE);
    for id in survivors {
        let path = v.url_path("zip");
        let f = get_following(&format!("{}{path}", cluster.url(id))).unwrap_or_else(|e| panic!("{e}\n{}", cluster.report()));
        assert_eq!(f.status, 200, "{path} via node {id} after the primary died: {}\n{}", f.summary(), cluster.report());
        assert!(f.body == v.zip, "{path} via node {id}: bytes differ");
    }
}

#[test]
fn min_copies_out_of_reach_answers_503_with_the_reason_and_keeps_the_blob() {
    let _serial = serial();
    let (set, versions) = many_versions(ModuleSet::default(), "q", 1);
    let v = &versions[0];
    let origin = Origin::start(set);
    let mut cluster = Cluster::start(
        &origin.url(),
        ClusterOptions {
            env: vec![("FLOTILLA_REPLICATION__MIN_COPIES", "3"), ("FLOTILLA_REPLICATION__MIN_COPIES_TIMEOUT", "2s")],
            ..Default::default()
        },
    );
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let away = cluster.others(primary)[0];
    cluster.node_mut(away).stop();

    let path = v.url_path("zip");
    let r = cluster.get(primary, &path);
    assert_eq!(r.status, 503, "{path} with min_copies = 3 and a node down: {}\n{}", r.summary(), cluster.report());
    assert!(r.text().contains("min_copies"), "the 503 does not say why: {}", r.summary());
    assert!(r.header("retry-after").is_some(), "no Retry-After on the 503: {:?}", r.headers);
    assert!(is_local(&cluster, primary, &v.zip_sha256()), "the primary dropped the blob after the 503");
    let lag = replication(&cluster, primary)["nodes"][away.to_string()].clone();
    assert_eq!(lag["missing_blobs"], 1, "the primary's lag for the stopped node {away}: {lag}");
    assert!(lag["oldest_missing_seconds"].as_f64() >= Some(1.0), "the missing blob's age (min_copies_timeout is 2 s): {lag}");

    cluster.node_mut(away).restart();
    wait_holds_all(&cluster, away, &versions, REPLICATE);
    wait_placement(&cluster, primary, &versions, &[1, 2, 3], REPLICATE);
    let r = cluster.get(primary, &path);
    assert_eq!(r.status, 200, "{path} once three nodes hold it: {}", r.summary());
    assert!(r.body == v.zip);
    assert_eq!(origin.count(&path), 1, "the blob kept after the 503 was fetched from upstream again");
}

#[test]
fn blob_rpc_refusals_are_clear_and_harmless() {
    use proto::{BlobsClient, FetchRequest, StatRequest};
    use sha2::Digest;
    use tonic::metadata::AsciiMetadataValue;
    use tonic::Code;

    let _serial = serial();
    let (set, versions) = many_versions(ModuleSet::default(), "r", 1);
    let v = versions[0].clone();
    let origin = Origin::start(set);
    let cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    warm(&cluster, primary, &versions);

    let secret = std::fs::read_to_string(&cluster.layout.secret_file).unwrap().trim().to_owned();
    let cluster_id = hex::encode(&sha2::Sha256::digest(format!("flotilla-cluster\n{secret}").as_bytes())[..8]);
    let addr = cluster.layout.member(primary).cluster;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = BlobsClient::connect(format!("http://{addr}")).await.expect("connect to the cluster port");
        fn stamp_with<T>(mut req: tonic::Request<T>, secret: &str, cluster_id: &str) -> tonic::Request<T> {
            req.metadata_mut().insert("x-flotilla-secret", AsciiMetadataValue::try_from(secret).unwrap());
            req.metadata_mut().insert("x-flotilla-cluster", AsciiMetadataValue::try_from(cluster_id).unwrap());
            req
        }
        let stamp = |req: tonic::Request<FetchRequest>, secret: &str| stamp_with(req, secret, &cluster_id);
        let from = cluster.others(primary)[0];
        let fetch = |sha: String, offset: u64| FetchRequest { from, sha256: sha, offset };
        let read_all = |mut client: BlobsClient<tonic::transport::Channel>, req| async move {
            let mut stream = client.fetch(req).await?.into_inner();
            let mut out = Vec::new();
            while let Some(chunk) = stream.message().await? {
                out.extend_from_slice(&chunk.data);
            }
            Ok::<Vec<u8>, tonic::Status>(out)
        };

        let unknown = "0".repeat(64);
        let err = read_all(client.clone(), stamp(tonic::Request::new(fetch(unknown.clone(), 0)), &secret)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
        assert!(err.message().contains(&unknown), "the refusal names the blob: {err:?}");

        let size = v.zip.len() as u64;
        let err = read_all(client.clone(), stamp(tonic::Request::new(fetch(v.zip_sha256(), size + 1)), &secret)).await.unwrap_err();
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        assert!(err.message().contains("beyond the end"), "{err:?}");

        let tail = read_all(client.clone(), stamp(tonic::Request::new(fetch(v.zip_sha256(), size)), &secret)).await.unwrap();
        assert!(tail.is_empty(), "offset == size yields no bytes");
        let rest = read_all(client.clone(), stamp(tonic::Request::new(fetch(v.zip_sha256(), 10)), &secret)).await.unwrap();
        assert!(rest == v.zip[10..], "Fetch from offset 10 returned other bytes");

        let err = read_all(client.clone(), stamp(tonic::Request::new(fetch("not-a-sha".into(), 0)), &secret)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

        let err =
            read_all(client.clone(), stamp(tonic::Request::new(fetch(v.zip_sha256(), 0)), "wrong-secret-0123456789")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(err.message().contains("secret"), "{err:?}");

        let stat = client
            .stat(stamp_with(tonic::Request::new(StatRequest { from, sha256: v.zip_sha256() }), &secret, &cluster_id))
            .await
            .expect("stat")
            .into_inner();
        assert!(stat.present && stat.size == size, "{stat:?}");
    });
    assert!(cluster.node(primary).logs().contains("refused cluster RPC: wrong cluster secret"));
    for id in cluster.ids() {
        assert_eq!(cluster.get(id, "/healthz").status, 200, "node {id} after the bad RPCs");
    }
    warm(&cluster, primary, &versions);
}

/// Writes the harness's admin token to a file in `dir`; returns its path.
fn admin_token_file(dir: &std::path::Path) -> String {
    harness::cluster::write_secret(dir, "admin.token", ADMIN_TOKEN).display().to_string()
}

#[test]
fn a_purged_version_leaves_every_node_and_only_its_blob_is_deleted_after_the_grace() {
    let _serial = serial();
    let (set, versions) = many_versions(ModuleSet::default(), "p", 2);
    let (gone, kept) = (&versions[0], &versions[1]);
    let origin = Origin::start(set);
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = admin_token_file(dir.path());
    let env = vec![
        ("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str()),
        ("FLOTILLA_REPLICATION__PURGE_GRACE", "2s"),
        ("FLOTILLA_REPLICATION__ANTI_ENTROPY_INTERVAL", "1s"),
    ];
    let cluster = Cluster::start(&origin.url(), ClusterOptions { env, ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    warm(&cluster, primary, &versions);
    for id in cluster.ids() {
        wait_holds_all(&cluster, id, &versions, REPLICATE);
    }
    // Every node serves the zip before the purge, so each keeps its record
    // in memory: the purge must reach that too.
    for id in cluster.ids() {
        let r = cluster.get(id, &gone.url_path("zip"));
        assert_eq!(r.status, 200, "{} on node {id} before the purge: {}", gone.url_path("zip"), r.summary());
    }

    // Sent to a follower's cluster port: it passes the purge on to the primary.
    let follower = cluster.others(primary)[0];
    let addr = cluster.layout.member(follower).cluster.to_string();
    let run = flotillactl(&addr, Some(ADMIN_TOKEN), &["purge", &gone.spec()]);
    assert!(run.success, "flotillactl purge {}: {}\n{}", gone.spec(), run.summary(), cluster.report());
    assert!(run.stdout.contains(&format!("purged {}", gone.spec())), "{}", run.summary());
    assert!(run.stdout.contains(&gone.zip_sha256()), "the answer names the zip blob: {}", run.summary());
    let primary_logs = cluster.node(primary).logs();
    assert!(primary_logs.contains("purged a module version from the catalog"), "{}", cluster.report());

    for id in cluster.ids() {
        let path = cluster.node(id).blob_path(&gone.zip_sha256());
        cluster.wait_for(&format!("node {id} to delete the purged blob {}", path.display()), REPLICATE, || !path.exists());
    }
    // A few more collection passes (interval 1 s, grace 2 s): the version
    // still in the catalog keeps its blob everywhere.
    std::thread::sleep(Duration::from_secs(4));
    for id in cluster.ids() {
        let on_disk = std::fs::read(cluster.node(id).blob_path(&kept.zip_sha256())).unwrap_or_default();
        assert_eq!(sha256_hex(&on_disk), kept.zip_sha256(), "node {id} lost the blob of {}, which was not purged", kept.spec());
        assert!(cluster.node(id).logs().contains("deleted a blob no catalog entry references"), "node {id}");
        // Followers no longer have the version: a miss goes to the primary.
        if id != primary {
            let r = cluster.get(id, &gone.url_path("zip"));
            assert_eq!(r.status, 307, "{} on follower {id} after the purge: {}", gone.url_path("zip"), r.summary());
            let r = cluster.get(id, &kept.url_path("zip"));
            assert_eq!(r.status, 200, "{} on follower {id}: {}", kept.url_path("zip"), r.summary());
            assert!(r.body == kept.zip);
        }
    }
    // The next request fetches the purged version from upstream again.
    assert_eq!(origin.count(&gone.url_path("zip")), 1);
    warm(&cluster, primary, std::slice::from_ref(gone));
    assert_eq!(origin.count(&gone.url_path("zip")), 2, "the purged zip was not fetched from upstream again");
    for id in cluster.ids() {
        wait_holds_all(&cluster, id, std::slice::from_ref(gone), REPLICATE);
    }
}
