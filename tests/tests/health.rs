//! `/serving`, the check a load balancer or a readiness probe uses: 200
//! while a node can serve what it holds, also when `/readyz` (can take
//! writes) fails because there is no primary; 503 when its store is gone.
//! A data directory of a format this binary does not read is refused at
//! start-up.

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

#[test]
fn a_data_directory_of_a_newer_format_is_refused_at_start_up_and_left_as_it_was() {
    let origin = Origin::start(ModuleSet::standard());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A data directory as a later release (format 2) leaves it.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("format"), "2\n").unwrap();
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", harness::node::free_port()).parse().unwrap();
    let run = harness::cluster::run_serve_once(listen, &data, &origin.url(), &[], Duration::from_secs(30));
    assert!(matches!(run.status, Some(s) if !s.success()), "the node must exit ({:?}):\n{}", run.status, run.output);
    assert!(
        run.output
            .contains("this data directory was written by a newer Flotilla (format 2); this binary reads format 1: upgrade the binary"),
        "{}",
        run.output
    );
    let left: Vec<String> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["format"], "nothing opened or created");
    assert_eq!(std::fs::read_to_string(data.join("format")).unwrap(), "2\n");

    // The format this release writes is recorded in a new data directory.
    let mut node = harness::Node::start(harness::NodeOptions::new(origin.url()));
    assert_eq!(node.get("/healthz").status, 200);
    assert_eq!(std::fs::read_to_string(node.data_dir().join("format")).unwrap(), "1\n");
    node.stop();
}
