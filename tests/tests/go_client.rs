//! The real go command (1.19) against a node in front of the fake origin:
//! downloads, builds, version lists, `@latest` queries and checksums must be
//! exactly what the go command gets from the origin itself.

use harness::modules::PSEUDO_VERSION;
use harness::{start_mirror, GoEnv, ModuleSet, Origin, Program};

/// `go get` queries that pick the program's requirements: `@latest` for
/// every module (the pseudo-only module through the `@latest` endpoint),
/// except the uppercase module, pinned to its uppercase pre-release.
const GET_QUERIES: &[&str] = &[
    "example.com/alpha@latest",
    "example.com/alpha/v2@latest",
    "example.com/beta@latest",
    "example.com/legacy@latest",
    "example.com/Upper/mod@v1.1.0-RC1",
    "example.com/retracted@latest",
    "example.com/pseudo@latest",
];

fn download_every_version(go: &GoEnv, set: &ModuleSet) {
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    let specs: Vec<String> = set.versions().map(|v| v.spec()).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    go.mod_download(&specs);
    for v in set.versions() {
        let cached = go.modcache().join("cache/download").join(v.url_path("zip").trim_start_matches('/'));
        let bytes = std::fs::read(&cached).unwrap_or_else(|e| panic!("{} not in module cache ({e})", v.spec()));
        assert!(bytes == v.zip, "{}: zip in module cache differs from the origin's", v.spec());
        let go_mod = cached.with_file_name(format!("{}.mod", harness::escape::escape(&v.version)));
        assert_eq!(std::fs::read(&go_mod).unwrap_or_default(), v.go_mod, "{}: .mod differs", v.spec());
    }
}

/// Builds the standard program with `go get` and returns its go.sum.
fn build_program(go: &GoEnv) -> String {
    let program = Program::standard();
    go.write_bare_program(&program);
    go.get(GET_QUERIES);
    for (module, version) in &program.requires {
        assert_eq!(&go.module_version(module), version, "go get picked the wrong version of {module}");
    }
    assert_eq!(go.build_and_run(), program.expected_output);
    go.verify();
    go.go_sum()
}

fn check_version_lists(go: &GoEnv) {
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    let expected: &[(&str, &[&str])] = &[
        ("example.com/alpha", &["v1.0.0", "v1.1.0", "v1.2.0"]),
        ("example.com/alpha/v2", &["v2.0.0"]),
        ("example.com/beta", &["v0.9.0", "v1.0.0", "v1.3.0", "v1.4.0-beta.1"]),
        ("example.com/legacy", &["v2.0.0+incompatible"]),
        ("example.com/Upper/mod", &["v1.0.0", "v1.1.0-RC1"]),
        ("example.com/retracted", &["v1.0.0", "v1.2.0"]),
        ("example.com/pseudo", &[]),
    ];
    for (module, versions) in expected {
        assert_eq!(go.list_versions(module), *versions, "go list -m -versions {module}");
    }
}

fn check_latest_picks(go: &GoEnv) {
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    let expected = [
        ("example.com/alpha", "v1.2.0"),
        ("example.com/beta", "v1.3.0"),
        ("example.com/Upper/mod", "v1.0.0"),
        ("example.com/retracted", "v1.2.0"),
        ("example.com/legacy", "v2.0.0+incompatible"),
        ("example.com/pseudo", PSEUDO_VERSION),
    ];
    for (module, version) in expected {
        go.get(&[&format!("{module}@latest")]);
        assert_eq!(go.module_version(module), version, "go get {module}@latest");
    }
}

fn origin_go_sum(origin: &Origin) -> String {
    build_program(&GoEnv::new(&origin.url()))
}

#[test]
fn origin_modules_are_valid_for_go() {
    let set = ModuleSet::standard();
    let origin = Origin::start(set.clone());
    let go = GoEnv::new(&origin.url());
    download_every_version(&go, &set);
    check_version_lists(&GoEnv::new(&origin.url()));
    check_latest_picks(&GoEnv::new(&origin.url()));
    let sum = origin_go_sum(&origin);
    assert!(sum.contains("example.com/Upper/mod v1.1.0-RC1 h1:"), "{sum}");
}

#[test]
fn go_mod_download_of_every_version_through_mirror_matches_origin_bytes() {
    let set = ModuleSet::standard();
    let (_origin, node) = start_mirror(set.clone(), |o| o);
    download_every_version(&GoEnv::new(&node.url()), &set);
}

#[test]
fn program_importing_every_module_builds_through_mirror() {
    let (_origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    build_program(&GoEnv::new(&node.url()));
}

#[test]
fn go_list_versions_through_mirror_hides_retracted_version() {
    let (_origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    check_version_lists(&GoEnv::new(&node.url()));
}

#[test]
fn go_get_latest_through_mirror_picks_newest_version() {
    let (_origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    check_latest_picks(&GoEnv::new(&node.url()));
}

#[test]
fn go_sum_through_mirror_equals_go_sum_through_origin_and_verifies() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let through_mirror = build_program(&GoEnv::new(&node.url()));
    assert_eq!(through_mirror, origin_go_sum(&origin));
}
