//! The checksum database through the mirror: the real go command with
//! `GOSUMDB=<test db name>+<key>` and `GOPROXY=<mirror>` has no route to the
//! test database (`sumdb.test` does not resolve), so every lookup and tile
//! it verifies with comes through Flotilla, which verifies every version it
//! fetches against the same database.

use std::collections::HashMap;
use std::time::Duration;

use harness::cluster::{get_following, write_secret, Cluster, ClusterOptions};
use harness::ctl::{flotillactl, ADMIN_TOKEN};
use harness::modules::build_zip;
use harness::{sha256_hex, wait_for, wait_until, GoEnv, ModuleSet, Node, NodeOptions, Origin, Program, SumdbServer, Tamper};

/// Made-up records before the test modules' ones, so the log has full tiles.
const FILLER: usize = 300;
const CONVERGE: Duration = Duration::from_secs(30);

const GET_QUERIES: &[&str] = &[
    "example.com/alpha@latest",
    "example.com/alpha/v2@latest",
    "example.com/beta@latest",
    "example.com/legacy@latest",
    "example.com/Upper/mod@v1.1.0-RC1",
    "example.com/retracted@latest",
    "example.com/pseudo@latest",
];

fn mirror(set: &ModuleSet, db: &SumdbServer, configure: impl FnOnce(NodeOptions) -> NodeOptions) -> (Origin, Node) {
    let origin = Origin::start(set.clone());
    let node = Node::start(configure(NodeOptions::new(origin.url()).config(&db.node_config())));
    (origin, node)
}

fn go_with_sumdb(proxy: &str, db: &SumdbServer) -> GoEnv {
    let mut go = GoEnv::new(proxy);
    go.set_sumdb(db.vkey());
    go
}

/// Requests of the database for lookups and tiles, by path.
fn log_reads(db: &SumdbServer) -> HashMap<String, usize> {
    db.counts().into_iter().filter(|(path, _)| path.starts_with("/lookup/") || path.starts_with("/tile/")).collect()
}

fn metric(node: &Node, needle: &str) -> bool {
    node.get("/metrics").text().lines().any(|l| l.starts_with(needle) && !l.ends_with(" 0"))
}

#[test]
fn go_command_builds_and_verifies_through_mirror_and_database_sees_each_tile_once() {
    let set = ModuleSet::standard();
    let db = SumdbServer::start(&set, FILLER);
    let (_origin, node) = mirror(&set, &db, |o| o);
    assert_eq!(node.get("/sumdb/sumdb.test/supported").status, 200);
    let other = node.get("/sumdb/sum.golang.org/supported");
    assert_eq!(other.status, 404, "an unconfigured database: {}", other.summary());

    let go = go_with_sumdb(&node.url(), &db);
    let program = Program::standard();
    go.write_bare_program(&program);
    go.get(GET_QUERIES);
    assert_eq!(go.build_and_run(), program.expected_output);
    go.verify();
    let sum = go.go_sum();
    let alpha = set.get("example.com/alpha", "v1.2.0");
    assert!(sum.contains(&format!("example.com/alpha v1.2.0/go.mod {}", gomod::h1_go_mod(&alpha.go_mod))), "{sum}");

    let first = log_reads(&db);
    assert!(first.keys().any(|p| p.starts_with("/tile/8/1/")) && first.keys().any(|p| p.starts_with("/lookup/")), "{first:?}");
    assert!(metric(&node, "flotilla_http_requests_total{route=\"sumdb\",status=\"200\"}"), "the go command asked the mirror nothing");

    let clients: Vec<GoEnv> = (0..3).map(|_| go_with_sumdb(&node.url(), &db)).collect();
    let program = &program;
    std::thread::scope(|s| {
        for go in &clients {
            s.spawn(move || {
                go.write_bare_program(program);
                go.get(GET_QUERIES);
                go.verify();
            });
        }
    });
    let after = log_reads(&db);
    for (path, count) in &after {
        assert_eq!(*count, 1, "the database saw {path} {count} times for four clients: {after:?}");
    }
    assert_eq!(after.keys().collect::<std::collections::BTreeSet<_>>(), first.keys().collect(), "later clients needed new database reads");
}

#[test]
fn tampered_zip_at_upstream_is_refused_with_both_hashes_and_nothing_is_stored() {
    let set = ModuleSet::standard();
    let db = SumdbServer::start(&set, FILLER);
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let admin = format!("127.0.0.1:{}", harness::node::free_port());
    let (origin, node) = mirror(&set, &db, |o| o.env("FLOTILLA_ADMIN__TOKEN_FILE", &token_file).env("FLOTILLA_ADMIN__LISTEN", &admin));
    let v = set.get("example.com/alpha", "v1.0.0");
    let files = vec![("go.mod".to_string(), v.go_mod.clone()), ("alpha.go".to_string(), b"package alpha\n\nconst Evil = 1\n".to_vec())];
    let tampered = build_zip(&v.path, &v.version, &files);
    origin.tamper(&v.url_path("zip"), Tamper::Body(tampered.clone()));

    let go = go_with_sumdb(&node.url(), &db);
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    let out = go.run(&["mod", "download", &v.spec()]);
    assert!(!out.success, "the go command accepted a tampered zip: {out}");
    assert!(out.stderr.contains("checksum mismatch"), "the go command does not report a checksum error: {out}");
    assert!(!go.modcache().join("cache/download/example.com/alpha/@v/v1.0.0.zip").exists(), "the tampered zip reached the client");

    let r = node.get(&v.url_path("zip"));
    assert_eq!(r.status, 502, "{}", r.summary());
    let body = r.text();
    let tampered_h1 = gomod::check_zip(
        std::io::Cursor::new(&tampered),
        &gomod::ModulePath::new(&v.path).unwrap(),
        &gomod::Version::new(&v.version).unwrap(),
        &gomod::ZipLimits::default(),
    )
    .unwrap()
    .h1;
    let real_h1 = gomod::check_zip(
        std::io::Cursor::new(&v.zip),
        &gomod::ModulePath::new(&v.path).unwrap(),
        &gomod::Version::new(&v.version).unwrap(),
        &gomod::ZipLimits::default(),
    )
    .unwrap()
    .h1;
    assert!(body.contains(&tampered_h1) && body.contains(&real_h1), "the 502 does not name both hashes: {body}");
    assert!(!node.blob_path(&sha256_hex(&tampered)).exists(), "the tampered zip was stored");
    let status = node.get("/api/v1/status").text();
    assert!(status.contains("\"blobs\""), "{status}");
    assert!(metric(&node, "flotilla_sumdb_mismatch_total{db=\"sumdb.test\",kind=\"checksum\"}"), "no mismatch metric");
    node.wait_for_log("security_event", Duration::from_secs(5));
    // …and in the audit log (through the catalog), by the mirror itself.
    let mut audit = serde_json::Value::Null;
    let recorded = wait_until(Duration::from_secs(10), || {
        audit = flotillactl(&admin, Some(ADMIN_TOKEN), &["audit", "--json"]).json();
        audit["entries"].as_array().is_some_and(|e| {
            e.iter().any(|e| {
                e["action"] == "sumdb-mismatch"
                    && e["who"] == "flotilla"
                    && e["target"] == v.spec().as_str()
                    && e["result"].as_str().is_some_and(|r| r.contains(&tampered_h1) && r.contains(&real_h1))
            })
        })
    });
    assert!(recorded, "no sumdb-mismatch audit entry for {}: {audit}", v.spec());

    origin.untamper(&v.url_path("zip"));
    let ok = go_with_sumdb(&node.url(), &db);
    ok.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    ok.mod_download(&[&v.spec()]);
}

fn tree_size(node: &Node) -> Option<u64> {
    let r = node.get("/sumdb/sumdb.test/latest");
    (r.status == 200).then(|| r.text().lines().nth(1).and_then(|n| n.parse().ok())).flatten()
}

#[test]
fn grown_database_is_accepted_and_forked_database_is_refused_and_reported() {
    let set = ModuleSet::standard();
    let mut db = SumdbServer::start(&set, FILLER);
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let admin = format!("127.0.0.1:{}", harness::node::free_port());
    let (_origin, node) = mirror(&set, &db, |o| {
        o.env("FLOTILLA_CACHE__LIST_TTL", "1s").env("FLOTILLA_ADMIN__TOKEN_FILE", &token_file).env("FLOTILLA_ADMIN__LISTEN", &admin)
    });
    let go = go_with_sumdb(&node.url(), &db);
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    go.mod_download(&["example.com/alpha@v1.0.0"]);
    let size = tree_size(&node).expect("a recorded tree head");

    db.restart(false, 300);
    wait_for("the mirror to accept the grown tree", Duration::from_secs(10), || tree_size(&node) == Some(size + 300));
    go.mod_download(&["example.com/alpha@v1.1.0"]);

    db.restart(true, 301);
    let beta = set.get("example.com/beta", "v1.0.0");
    let r = node.get("/sumdb/sumdb.test/lookup/example.com/beta@v1.0.0");
    assert_eq!(r.status, 502, "a lookup from the forked database: {}", r.summary());
    assert!(r.text().contains("forked"), "{}", r.summary());
    let zip = node.get(&beta.url_path("zip"));
    assert_eq!(zip.status, 502, "a version only the forked database vouches for: {}", zip.summary());
    wait_for("the recorded tree head to go stale", Duration::from_secs(10), || {
        let latest = node.get("/sumdb/sumdb.test/latest");
        latest.status == 502 && latest.text().contains("forked")
    });
    assert!(metric(&node, "flotilla_sumdb_mismatch_total{db=\"sumdb.test\",kind=\"fork\"}"), "no fork metric");
    node.wait_for_log("forked", Duration::from_secs(5));
    let mut audit = serde_json::Value::Null;
    let recorded = wait_until(Duration::from_secs(10), || {
        audit = flotillactl(&admin, Some(ADMIN_TOKEN), &["audit", "--json"]).json();
        audit["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["action"] == "sumdb-fork" && e["target"] == "sumdb.test" && e["who"] == "flotilla"))
    });
    assert!(recorded, "no sumdb-fork audit entry: {audit}");

    let fresh = go_with_sumdb(&node.url(), &db);
    fresh.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    let out = fresh.run(&["mod", "download", &beta.spec()]);
    assert!(!out.success, "the go command got a version through a forked database: {out}");
}

#[test]
fn bad_sumdb_requests_get_clear_errors_and_private_modules_are_never_looked_up() {
    let set = ModuleSet::standard();
    let db = SumdbServer::start(&set, FILLER);
    let (origin, node) = mirror(&set, &db, |o| o);
    let private = Node::start(
        NodeOptions::new(origin.url())
            .config(&db.node_config())
            .env("FLOTILLA_UPSTREAM__PRIVATE", "example.com/beta")
            .env("FLOTILLA_UPSTREAM__PRIVATE_PROXIES", &origin.url()),
    );
    let cases = [
        ("/sumdb/sumdb.test/lookup/example.com/alpha", 400, "module>@<version"),
        ("/sumdb/sumdb.test/lookup/example.com/alpha@1.0", 400, "version"),
        ("/sumdb/sumdb.test/tile/8/0/abc", 400, "malformed tile path"),
        ("/sumdb/sumdb.test/tile/8/0/000.p/256", 400, "malformed tile path"),
        ("/sumdb/sumdb.test/tile/4/0/000", 404, "height 8"),
        ("/sumdb/sumdb.test/tile/8/0/x999/x999/000", 404, "beyond"),
        ("/sumdb/sumdb.test/everything", 404, "lookup/"),
        ("/sumdb/other.example/latest", 404, "not proxied"),
    ];
    for (path, status, says) in cases {
        let r = node.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.summary());
        assert!(r.text().contains(says) && r.text().lines().count() == 1, "{path}: {}", r.summary());
    }

    let mut conn = harness::http::KeepAlive::connect(node.addr()).expect("connect");
    let head = conn.request("HEAD", "/sumdb/sumdb.test/lookup/example.com/gamma@v1.0.0", &[]).expect("HEAD");
    assert_eq!(head.status, 404, "HEAD answers from the catalog alone: {}", head.summary());
    assert!(!db.counts().keys().any(|p| p.contains("gamma")), "HEAD reached the database");

    let data = node.get("/sumdb/sumdb.test/tile/8/data/000");
    assert_eq!(data.status, 200, "record data is passed through: {}", data.summary());
    assert!(data.text().starts_with("0\nfiller.test/m0 v1.0.0 h1:"), "{}", data.summary());

    let r = private.get("/sumdb/sumdb.test/lookup/example.com/beta@v1.0.0");
    assert_eq!(r.status, 403, "a lookup of a private module: {}", r.summary());
    let beta = set.get("example.com/beta", "v1.0.0");
    for ext in ["mod", "zip"] {
        let r = private.get(&beta.url_path(ext));
        assert_eq!(r.status, 200, "{}", r.summary());
    }
    assert!(!db.counts().keys().any(|p| p.contains("beta")), "a private module was looked up: {:?}", db.counts());
}

#[test]
fn fetch_fails_closed_while_the_database_is_unreachable() {
    let set = ModuleSet::standard();
    let mut db = SumdbServer::start(&set, FILLER);
    let (origin, node) = mirror(&set, &db, |o| o);
    let status = node.get("/api/v1/status").text();
    assert!(status.contains("\"name\":\"sumdb.test\""), "{status}");
    let unknown = ModuleSet::make_version("example.com/alpha", "alpha", "v1.3.0");
    origin.modules_mut().insert(unknown.clone());
    let r = node.get(&unknown.url_path("zip"));
    assert_eq!(r.status, 502, "a version the database has no record of: {}", r.summary());
    assert!(r.text().contains("no record"), "{}", r.summary());
    assert!(!node.blob_path(&unknown.zip_sha256()).exists(), "an unverifiable zip was stored");
    db.stop();
    let v = set.get("example.com/alpha", "v1.0.0");
    for ext in ["mod", "zip"] {
        let r = node.get(&v.url_path(ext));
        assert_eq!(r.status, 502, "{}", r.summary());
        assert!(r.text().contains("cannot be verified") && r.text().contains("unavailable"), "{}", r.summary());
    }
    assert!(!node.blob_path(&v.zip_sha256()).exists(), "an unverified zip was stored");

    db.restart(false, 0);
    let r = node.get(&v.url_path("zip"));
    assert_eq!(r.status, 200, "once the database is back: {}", r.summary());
    let status = node.get("/api/v1/status").text();
    assert!(status.contains("\"tree_size\":"), "{status}");
}

#[test]
fn followers_answer_sumdb_requests_with_the_database_stopped() {
    let set = ModuleSet::standard();
    let mut db = SumdbServer::start(&set, FILLER);
    let origin = Origin::start(set.clone());
    let cluster = Cluster::start(&origin.url(), ClusterOptions { config: Some(db.node_config()), ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let spec = "example.com/alpha@v1.0.0";
    let go = go_with_sumdb(&cluster.url(primary), &db);
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    go.mod_download(&[spec]);

    let mut paths: Vec<String> = log_reads(&db).into_keys().collect();
    paths.push("/latest".to_string());
    let zip = set.get("example.com/alpha", "v1.0.0").url_path("zip");
    db.stop();
    for follower in cluster.others(primary) {
        for path in paths.iter().map(|p| format!("/sumdb/sumdb.test{p}")).chain([zip.clone()]) {
            wait_for(&format!("node {follower} to serve {path} itself"), CONVERGE, || cluster.get(follower, &path).status == 200);
            assert_eq!(cluster.get(follower, &path).body, cluster.get(primary, &path).body, "{path} differs on node {follower}");
        }
        let client = go_with_sumdb(&cluster.url(follower), &db);
        client.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
        client.mod_download(&[spec]);
    }
}

/// Versions cached while the mirror verified nothing (no checksum
/// database), one of them tampered at the upstream and one the database
/// never recorded; then the database is configured: `flotillactl verify
/// --sumdb` reports the mismatch with both hashes (a security event in the
/// audit log), the unknown version, and skips the private module. `doctor`
/// reports the database reachable and verified, then unreachable.
#[test]
fn verify_sumdb_reports_cached_versions_the_database_contradicts_and_doctor_checks_the_database() {
    let set = ModuleSet::standard();
    let mut db = SumdbServer::start(&set, FILLER);
    let unlisted = ModuleSet::make_version("example.com/unlisted", "unlisted", "v1.0.0");
    let mut served = set.clone();
    served.insert(unlisted.clone());
    let origin = Origin::start(served);
    let alpha = set.get("example.com/alpha", "v1.0.0");
    let beta = set.get("example.com/beta", "v1.0.0");
    let legacy = set.get("example.com/legacy", "v2.0.0+incompatible");
    let files = vec![("go.mod".to_string(), alpha.go_mod.clone()), ("alpha.go".to_string(), b"package alpha\n\nconst Evil = 2\n".to_vec())];
    let tampered = build_zip(&alpha.path, &alpha.version, &files);
    origin.tamper(&alpha.url_path("zip"), Tamper::Body(tampered.clone()));

    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let admin = format!("127.0.0.1:{}", harness::node::free_port());
    let with_admin = |o: NodeOptions| o.env("FLOTILLA_ADMIN__TOKEN_FILE", &token_file).env("FLOTILLA_ADMIN__LISTEN", &admin);
    // No checksum database (the harness default, FLOTILLA_SUMDB=off): everything is stored unchecked.
    let mut node = Node::start(with_admin(NodeOptions::new(origin.url())));
    for v in [alpha, beta, legacy, &unlisted] {
        for ext in ["mod", "zip"] {
            let r = node.get(&v.url_path(ext));
            assert_eq!(r.status, 200, "{}: {}", v.spec(), r.summary());
        }
    }
    *node.options_mut() =
        with_admin(NodeOptions::new(origin.url()).config(&db.node_config()).env("FLOTILLA_UPSTREAM__PRIVATE", "example.com/legacy"));
    node.restart();
    let ctl = |args: &[&str]| flotillactl(&admin, Some(ADMIN_TOKEN), args);

    let h1 = |zip: &[u8]| {
        let (m, v) = (gomod::ModulePath::new(&alpha.path).unwrap(), gomod::Version::new(&alpha.version).unwrap());
        gomod::check_zip(std::io::Cursor::new(zip), &m, &v, &gomod::ZipLimits::default()).unwrap().h1
    };
    let (tampered_h1, real_h1) = (h1(&tampered), h1(&alpha.zip));
    let run = ctl(&["verify", "--sumdb"]);
    assert_eq!(run.code, Some(2), "a mismatch exits with status 2: {}", run.summary());
    for needle in ["MISMATCH", &tampered_h1, &real_h1, "example.com/unlisted", "unknown to the database", "1 private skipped"] {
        assert!(run.stdout.contains(needle), "{needle:?} missing: {}", run.summary());
    }
    let report = ctl(&["verify", "--sumdb", "--json"]);
    assert_eq!(report.code, Some(2), "{}", report.summary());
    let report = report.json();
    assert_eq!((report["mismatched"].as_u64(), report["unknown"].as_u64()), (Some(1), Some(1)), "{report}");
    assert_eq!((report["private_skipped"].as_u64(), report["not_checked"].as_u64()), (Some(1), Some(0)), "{report}");
    // alpha's go.mod and beta match; the unlisted version is unknown.
    assert_eq!(report["matched"].as_u64(), Some(1), "{report}");
    let findings = report["findings"].as_array().expect("findings");
    let mismatch = findings.iter().find(|f| f["kind"] == "mismatch").expect("a mismatch");
    assert_eq!(
        (&mismatch["module"], &mismatch["file"], &mismatch["catalog_h1"], &mismatch["database_h1"]),
        (&serde_json::json!(alpha.path), &serde_json::json!("zip"), &serde_json::json!(tampered_h1), &serde_json::json!(real_h1)),
        "{report}"
    );
    assert!(findings.iter().any(|f| f["kind"] == "unknown" && f["module"] == "example.com/unlisted"), "{report}");
    assert!(!db.counts().keys().any(|p| p.contains("legacy")), "a private module was looked up: {:?}", db.counts());

    // The mismatch is a security event in the audit log, and the run itself is recorded.
    let audit = ctl(&["audit", "--json"]).json();
    let entries = audit["entries"].as_array().expect("entries").clone();
    let event = entries.iter().find(|e| e["action"] == "sumdb-mismatch").unwrap_or_else(|| panic!("no sumdb-mismatch entry: {audit}"));
    assert_eq!((&event["who"], &event["target"]), (&serde_json::json!("flotilla"), &serde_json::json!(alpha.spec())), "{audit}");
    assert!(event["result"].as_str().is_some_and(|r| r.contains(&tampered_h1) && r.contains(&real_h1)), "{audit}");
    assert!(entries.iter().any(|e| e["action"] == "verify-sumdb" && e["who"] == "admin"), "{audit}");

    // doctor: the database reachable, its head verified; then stopped.
    let check = |run: &harness::ctl::CtlRun| {
        let json = run.json();
        json["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["check"] == "checksum database sumdb.test")
            .cloned()
            .unwrap_or_else(|| panic!("doctor does not check the checksum database: {}", run.summary()))
    };
    let up = ctl(&["doctor", "--json", "--module", &beta.spec()]);
    let c = check(&up);
    assert_eq!(c["ok"], true, "{}", up.summary());
    assert!(c["detail"].as_str().unwrap().contains(&format!("{} records", tree_size(&node).expect("a verified head"))), "{c}");
    db.stop();
    let down = ctl(&["doctor", "--json", "--module", &beta.spec()]);
    assert_eq!(down.code, Some(2), "{}", down.summary());
    let c = check(&down);
    assert_eq!(c["ok"], false, "{}", down.summary());
    assert!(c["detail"].as_str().unwrap().contains("UNREACHABLE") && c["detail"].as_str().unwrap().contains("records"), "{c}");
    let table = ctl(&["doctor", "--module", &beta.spec()]);
    assert!(table.stdout.contains("PROBLEM checksum database sumdb.test: UNREACHABLE"), "{}", table.summary());
}

/// On a cluster: a tampered zip asked of a follower is refused by the
/// primary, and the security event reaches every node's audit log through
/// raft; `verify --sumdb` and doctor's database check asked of a follower
/// are answered by the primary.
#[test]
fn cluster_audits_sumdb_security_events_through_raft_and_followers_pass_sumdb_checks_on() {
    let set = ModuleSet::standard();
    let db = SumdbServer::start(&set, FILLER);
    let origin = Origin::start(set.clone());
    let alpha = set.get("example.com/alpha", "v1.1.0");
    let beta = set.get("example.com/beta", "v1.0.0");
    let files = vec![("go.mod".to_string(), alpha.go_mod.clone()), ("alpha.go".to_string(), b"package alpha\n\nconst Evil = 3\n".to_vec())];
    origin.tamper(&alpha.url_path("zip"), Tamper::Body(build_zip(&alpha.path, &alpha.version, &files)));
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let cluster = Cluster::start(
        &origin.url(),
        ClusterOptions {
            config: Some(db.node_config()),
            env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())],
            ..Default::default()
        },
    );
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let follower = cluster.others(primary)[0];
    let admin_of = |id: u64| cluster.layout.member(id).cluster.to_string();

    let ok = get_following(&format!("{}{}", cluster.url(primary), beta.url_path("zip"))).expect("GET beta");
    assert_eq!(ok.status, 200, "{}", ok.summary());
    let refused = get_following(&format!("{}{}", cluster.url(follower), alpha.url_path("zip"))).expect("GET alpha");
    assert_eq!(refused.status, 502, "{}", refused.summary());

    for id in cluster.ids() {
        let mut audit = serde_json::Value::Null;
        let recorded = wait_until(CONVERGE, || {
            audit = flotillactl(&admin_of(id), Some(ADMIN_TOKEN), &["audit", "--json"]).json();
            audit["entries"].as_array().is_some_and(|e| {
                e.iter().any(|e| e["action"] == "sumdb-mismatch" && e["target"] == alpha.spec().as_str() && e["via"] == primary)
            })
        });
        assert!(recorded, "node {id}'s audit log lacks the security event: {audit}");
    }

    let ctl = |args: &[&str]| flotillactl(&admin_of(follower), Some(ADMIN_TOKEN), args);
    let verified = ctl(&["verify", "--sumdb", "--json"]);
    assert_eq!(verified.code, Some(0), "{}", verified.summary());
    let report = verified.json();
    assert_eq!((report["matched"].as_u64(), report["mismatched"].as_u64()), (Some(1), Some(0)), "{report}");
    let audit = ctl(&["audit", "--json"]).json();
    let run = audit["entries"].as_array().and_then(|e| e.iter().find(|e| e["action"] == "verify-sumdb").cloned());
    assert_eq!(run.map(|r| r["via"].clone()), Some(serde_json::json!(follower)), "{audit}");
    let doctor = ctl(&["doctor", "--json", "--module", &beta.spec()]).json();
    let check = doctor["checks"].as_array().and_then(|c| c.iter().find(|c| c["check"] == "checksum database sumdb.test").cloned());
    assert_eq!(check.as_ref().map(|c| c["ok"].clone()), Some(serde_json::json!(true)), "{doctor}");
}
