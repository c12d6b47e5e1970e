//! With the origin gone, a node keeps serving everything it cached: a fresh
//! go module cache still downloads and builds, version lists are served
//! stale after their TTL, and what was never cached fails with 502 and a
//! reason instead of hanging or pretending it does not exist.

use std::time::{Duration, Instant};

use harness::modules::{latest_path, list_path, PSEUDO_VERSION};
use harness::{start_mirror, GoEnv, ModuleSet, Node, Origin, Program};

const LIST_TTL: Duration = Duration::from_secs(1);

fn offline_mirror() -> (Origin, Node) {
    start_mirror(ModuleSet::standard(), |o| {
        o.env("FLOTILLA_CACHE__LIST_TTL", "1s").env("FLOTILLA_CACHE__NEGATIVE_TTL", "2s").env("FLOTILLA_UPSTREAM__TIMEOUT", "5s")
    })
}

/// Builds the standard program through the node; returns its go.sum.
fn warm(node: &Node) -> String {
    let go = GoEnv::new(&node.url());
    let program = Program::standard();
    go.write_program(&program);
    go.mod_tidy();
    assert_eq!(go.build_and_run(), program.expected_output);
    go.go_sum()
}

fn assert_text_error(what: &str, response: &harness::Response, status: u16) {
    assert_eq!(response.status, status, "{what}: {}", response.summary());
    assert!(response.content_type().starts_with("text/plain"), "{what}: {}", response.summary());
    let text = response.text();
    assert!(!text.trim().is_empty() && !text.trim().contains('\n'), "{what}: want a one-line reason, got {text:?}");
}

#[test]
fn cached_modules_download_and_build_with_origin_stopped() {
    let (origin, node) = offline_mirror();
    let go_sum = warm(&node);
    origin.stop();

    let go = GoEnv::new(&node.url());
    let program = Program::standard();
    go.write_program(&program);
    go.write_file("go.sum", &go_sum);
    go.mod_download(&[]);
    assert_eq!(go.build_and_run(), program.expected_output);
    go.verify();
    assert_eq!(go.go_sum(), go_sum);
}

#[test]
fn version_lists_and_latest_are_served_stale_after_ttl_when_origin_is_down() {
    let (origin, node) = offline_mirror();
    let set = origin.modules();
    let modules = ["example.com/alpha", "example.com/Upper/mod", "example.com/pseudo"];
    // `go list -m -versions` also reads .info and .mod of the newest release
    // for its retractions, so warm with the go command itself.
    let online = GoEnv::new(&node.url());
    online.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    online.list_versions("example.com/alpha");
    for m in modules {
        assert_eq!(node.get(&list_path(m)).status, 200, "warming list of {m}");
    }
    assert_eq!(node.get(&latest_path("example.com/pseudo")).status, 200, "warming @latest");
    let warmed = Instant::now();
    origin.stop();
    // The lists must be older than their TTL, so that the node has to try
    // the origin before falling back to what it has.
    std::thread::sleep((warmed + LIST_TTL + Duration::from_millis(300)).saturating_duration_since(Instant::now()));

    for m in modules {
        let r = node.get(&list_path(m));
        assert_eq!(r.status, 200, "stale list of {m}: {}", r.summary());
        let text = r.text();
        let mut got: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        got.sort();
        let mut want = set.tagged(m).expect("known module");
        want.sort();
        assert_eq!(got, want, "stale list of {m}");
    }
    let latest = node.get(&latest_path("example.com/pseudo"));
    assert_eq!(latest.status, 200, "stale @latest: {}", latest.summary());
    let info: serde_json::Value = serde_json::from_slice(&latest.body).expect("@latest is JSON");
    assert_eq!(info["Version"], PSEUDO_VERSION);

    let go = GoEnv::new(&node.url());
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    assert_eq!(go.list_versions("example.com/alpha"), ["v1.0.0", "v1.1.0", "v1.2.0"]);
}

#[test]
fn uncached_module_answers_502_with_reason_while_origin_is_down_and_works_once_it_returns() {
    let (origin, node) = offline_mirror();
    let set = origin.modules();
    let uncached = set.get("example.com/alpha", "v1.0.0");
    assert_eq!(node.get(&list_path("example.com/alpha")).status, 200);
    origin.stop();

    assert_text_error("uncached zip", &node.get(&uncached.url_path("zip")), 502);
    assert_text_error("uncached info", &node.get(&uncached.url_path("info")), 502);
    assert_text_error("list of a never-seen module", &node.get(&list_path("example.com/never/seen")), 502);

    origin.restart();
    let r = node.get(&uncached.url_path("zip"));
    assert_eq!(r.status, 200, "after the origin is back: {}", r.summary());
    assert!(r.body == uncached.zip, "zip differs from the origin's");
}

#[test]
fn latest_and_lists_are_served_stale_after_ttl_when_upstream_is_switched_off() {
    let (origin, mut node) = offline_mirror();
    let module = "example.com/pseudo";
    let latest = node.get(&latest_path(module));
    assert_eq!(latest.status, 200, "warming @latest: {}", latest.summary());
    assert_eq!(node.get(&list_path("example.com/alpha")).status, 200, "warming a list");
    let warmed = Instant::now();

    node.options_mut().upstream = "off".to_owned();
    node.restart();
    std::thread::sleep((warmed + LIST_TTL + Duration::from_millis(300)).saturating_duration_since(Instant::now()));
    origin.reset_counts();

    let stale = node.get(&latest_path(module));
    assert_eq!(stale.status, 200, "stale @latest with upstream off: {}", stale.summary());
    assert_eq!(stale.body, latest.body);
    let list = node.get(&list_path("example.com/alpha"));
    assert_eq!(list.status, 200, "stale list with upstream off: {}", list.summary());
    assert_text_error("@latest never cached", &node.get(&latest_path("example.com/beta")), 404);
    assert!(origin.requests().is_empty(), "upstream is off, yet the origin was asked: {:?}", origin.requests());
}
