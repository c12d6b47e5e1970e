//! `/serving`, the check a load balancer or a readiness probe uses: 200
//! while a node can serve what it holds, also when `/readyz` (can take
//! writes) fails because there is no primary; 503 when its store is gone.

use std::time::Duration;

use harness::cluster::{get_following, Cluster, ClusterOptions};
use harness::{start_mirror, ModuleSet, Origin};

const CONVERGE: Duration = Duration::from_secs(20);
const REPLICATE: Duration = Duration::from_secs(10);

#[test]
fn a_node_left_alone_by_two_stopped_peers_keeps_serving_while_readyz_fails() {
    let origin = Origin::start(ModuleSet::standard());
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let survivor = cluster.others(primary)[0];

    let v = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    let fetched = get_following(&format!("{}{}", cluster.url(survivor), v.url_path("zip"))).expect("download through a follower");
    assert_eq!(fetched.status, 200, "{}", fetched.summary());
    cluster.wait_for("the zip on the survivor", REPLICATE, || cluster.try_get(survivor, &v.url_path("zip")).is_ok_and(|r| r.status == 200));
    assert_eq!(cluster.get(survivor, "/serving").status, 200);

    for id in cluster.others(survivor) {
        cluster.node_mut(id).stop();
    }
    cluster.wait_for("the survivor's /readyz to fail", CONVERGE, || !cluster.ready(survivor));
    let serving = cluster.get(survivor, "/serving");
    assert_eq!(serving.status, 200, "/serving with no primary: {}", String::from_utf8_lossy(&serving.body));
    let zip = cluster.get(survivor, &v.url_path("zip"));
    assert_eq!(zip.status, 200, "a cached zip with no primary");
    assert!(zip.body == v.zip, "the survivor served other bytes than the origin's zip");
}

#[test]
fn serving_fails_with_the_reason_when_the_blob_directory_is_gone() {
    let (_origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let ok = node.get("/serving");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"serving\n");

    std::fs::remove_dir_all(node.data_dir().join("blobs")).expect("remove the blob directory");
    let broken = node.get("/serving");
    assert_eq!(broken.status, 503);
    let body = String::from_utf8_lossy(&broken.body);
    assert!(body.starts_with("cannot serve: ") && body.contains("blobs"), "503 body: {body:?}");
    assert_eq!(node.get("/healthz").status, 200, "/healthz only says the process runs");
}
