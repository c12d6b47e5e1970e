//! `flotillactl warm` from a go.sum the real go command wrote: every version
//! in it is fetched once, a second run fetches nothing, replication brings
//! every zip to every node, and the go command then downloads everything
//! through a follower without the mirror going upstream again.

use std::collections::BTreeSet;
use std::time::Duration;

use harness::cluster::{write_secret, Cluster, ClusterOptions};
use harness::ctl::{flotillactl, ADMIN_TOKEN};
use harness::{wait_until, GoEnv, ModuleSet, Origin, Program};

const CONVERGE: Duration = Duration::from_secs(20);

#[test]
fn warm_from_a_real_go_sum_fetches_every_version_once() {
    let origin = Origin::start(ModuleSet::standard());
    let set = origin.modules();
    let author = GoEnv::new(&origin.url());
    author.write_program(&Program::standard());
    author.mod_tidy();
    let go_sum_text = author.go_sum();
    let go_sum = author.work_dir().join("go.sum");
    // (module, version, needs the zip) as the go.sum lists them.
    let mut listed = BTreeSet::new();
    let mut zips = BTreeSet::new();
    for line in go_sum_text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (module, version) = (fields[0].to_string(), fields[1].trim_end_matches("/go.mod").to_string());
        if !fields[1].ends_with("/go.mod") {
            zips.insert((module.clone(), version.clone()));
        }
        listed.insert((module, version));
    }
    assert!(zips.len() >= 7, "the program's go.sum names every module: {go_sum_text}");
    origin.reset_counts();

    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() },
    );
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let all: Vec<String> = cluster.ids().iter().map(|&id| cluster.layout.member(id).cluster.to_string()).collect();
    let all = all.join(",");
    let go_sum_arg = go_sum.display().to_string();

    let first = flotillactl(&all, Some(ADMIN_TOKEN), &["warm", "--file", &go_sum_arg, "--json"]);
    assert!(first.success, "{}", first.summary());
    let report = first.json();
    assert_eq!(report["fetched"].as_array().map(Vec::len), Some(listed.len()), "{report}");
    assert_eq!(report["failed"], serde_json::json!([]), "{report}");
    assert_eq!(report["gateway"], cluster.url(primary), "{report}");
    for (module, version) in &zips {
        let v = set.get(module, version);
        assert_eq!(origin.count(&v.url_path("zip")), 1, "{} fetched once: {:?}", v.spec(), origin.requests());
    }
    for (module, version) in &listed {
        assert_eq!(origin.count(&set.get(module, version).url_path("mod")), 1, "{module}@{version}.mod: {:?}", origin.requests());
    }

    let upstream_requests = origin.requests().len();
    let second = flotillactl(&all, Some(ADMIN_TOKEN), &["warm", "--file", &go_sum_arg]);
    assert!(second.success, "{}", second.summary());
    let expected =
        format!("{} version(s) through {}: 0 fetched (0 B), {} already cached, 0 failed", listed.len(), cluster.url(primary), listed.len());
    assert!(second.stdout.contains(&expected), "expected {expected:?}: {}", second.summary());
    assert_eq!(origin.requests().len(), upstream_requests, "a second warm went upstream: {:?}", origin.requests());

    // Every zip reaches every node.
    let converged = wait_until(Duration::from_secs(30), || {
        let run = flotillactl(&all, Some(ADMIN_TOKEN), &["replication", "--json"]);
        run.success && run.json()["missing_blobs"] == 0
    });
    assert!(converged, "replication did not converge after warming\n{}", cluster.report());

    // The go command gets everything through a follower; upstream sees nothing new.
    let follower = cluster.others(primary)[0];
    let user = GoEnv::new(&cluster.url(follower));
    user.write_program(&Program::standard());
    user.write_file("go.sum", &go_sum_text);
    assert_eq!(user.build_and_run(), Program::standard().expected_output);
    for (module, version) in &zips {
        let v = set.get(module, version);
        assert_eq!(origin.count(&v.url_path("zip")), 1, "{} fetched again: {:?}", v.spec(), origin.requests());
    }

    // Bad input: clear errors, non-zero exit.
    let bad = flotillactl(&all, Some(ADMIN_TOKEN), &["warm", "example.com/alpha"]);
    assert!(!bad.success && bad.stderr.contains("is not module@version"), "{}", bad.summary());
    let missing = flotillactl(&all, Some(ADMIN_TOKEN), &["warm", "example.com/nope@v1.0.0"]);
    assert!(!missing.success && missing.stdout.contains("failed example.com/nope@v1.0.0"), "{}", missing.summary());
    assert!(missing.stderr.contains("1 of 1 version(s) could not be warmed"), "{}", missing.summary());
    let none = flotillactl(&all, Some(ADMIN_TOKEN), &["warm"]);
    assert!(!none.success && none.stderr.contains("nothing to warm"), "{}", none.summary());
}
