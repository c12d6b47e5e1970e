//! `.info` of something that is not a stored version is a query that only
//! upstream can answer: passed through every time, never stored. That
//! includes a semantic version of another major on a path without a major
//! suffix (`go get github.com/docker/docker@v24.0.7`), which upstream
//! resolves to its `+incompatible` version.

use harness::{start_mirror, GoEnv, ModuleSet};

const QUERY: &str = "/example.com/legacy/@v/v2.0.0.info";

#[test]
fn info_of_another_major_on_an_unsuffixed_path_is_resolved_by_upstream_and_never_stored() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    for _ in 0..2 {
        let r = node.get(QUERY);
        assert_eq!(r.status, 200, "{}", r.summary());
        let info: serde_json::Value = serde_json::from_slice(&r.body).expect("the answer is JSON");
        assert_eq!(info["Version"], "v2.0.0+incompatible");
        let cache = r.header("cache-control").unwrap_or_default();
        assert!(!cache.contains("immutable"), "a query's answer may change; Cache-Control: {cache}");
    }
    assert_eq!(origin.count(QUERY), 2, "every query goes upstream: {:?}", origin.requests());

    // Only the .info is a query: the files of that spelling do not exist.
    for ext in ["mod", "zip"] {
        let r = node.get(&format!("/example.com/legacy/@v/v2.0.0.{ext}"));
        assert_eq!(r.status, 400, ".{ext}: {}", r.summary());
    }
}

#[test]
fn go_get_of_a_higher_major_on_an_unsuffixed_path_resolves_to_incompatible() {
    let (_origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let go = GoEnv::new(&node.url());
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    go.get(&["example.com/legacy@v2.0.0"]);
    assert_eq!(go.module_version("example.com/legacy"), "v2.0.0+incompatible");
    assert!(go.go_sum().contains("example.com/legacy v2.0.0+incompatible h1:"), "go.sum:\n{}", go.go_sum());
}
