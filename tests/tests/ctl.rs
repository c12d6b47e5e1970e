//! `flotillactl` against three real `flotilla` processes: `status`,
//! `replication`, `modules`, `purge` and `audit`, as tables and `--json`,
//! with what they show checked against what the cluster really holds.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use harness::cluster::{get_following, write_secret, Cluster, ClusterOptions};
use harness::ctl::{flotillactl, flotillactl_env, CtlRun, ADMIN_TOKEN};
use harness::{wait_until, ModuleSet, Node, NodeOptions, Origin};

const CONVERGE: Duration = Duration::from_secs(20);
const OTHER_TOKEN: &str = "ci-bot-token-abcdef0123456789";

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

fn ok(run: &CtlRun, what: &str) {
    assert!(run.success, "{what}: {}", run.summary());
}

#[test]
fn ctl_shows_status_replication_and_modules_of_a_real_cluster() {
    let a = ModuleSet::make_version("example.com/ctl/a", "a", "v1.0.0");
    let b = ModuleSet::make_version("example.com/ctl/b", "b", "v0.2.0");
    let mut set = ModuleSet::default();
    set.insert(a.clone());
    set.insert(b.clone());
    let origin = Origin::start(set);
    let dir = tempfile::tempdir().expect("temp dir");
    // Named tokens: the audit log says which one made a change.
    let tokens = format!("alice:{ADMIN_TOKEN}\nci-bot:{OTHER_TOKEN}");
    let token_file = write_secret(dir.path(), "admin.tokens", &tokens).display().to_string();
    let mut cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() },
    );
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let all: Vec<String> = cluster.ids().iter().map(|&id| cluster.layout.member(id).cluster.to_string()).collect();
    let all = all.join(",");
    let ctl = |args: &[&str]| flotillactl(&all, Some(ADMIN_TOKEN), args);

    for v in [&a, &b] {
        let zip = get_following(&format!("{}{}", cluster.url(primary), v.url_path("zip"))).expect("warm the zip");
        assert_eq!(zip.status, 200, "{}", zip.summary());
    }

    // Replication converges to nothing missing, as `replication` shows it
    // (the table, its alias `lag`, and JSON), once every node holds both zips.
    let mut last = None;
    let converged = wait_until(Duration::from_secs(30), || {
        let status = ctl(&["status", "--json"]);
        let everywhere =
            status.success && status.json()["members"].as_array().is_some_and(|m| m.iter().all(|m| m["status"]["blobs"]["count"] == 2));
        let table = ctl(&["lag"]);
        let done = everywhere && table.success && table.stdout.contains("every node holds every blob");
        last = Some(table);
        done
    });
    assert!(converged, "replication did not converge: {}\n{}", last.map(|r| r.summary()).unwrap_or_default(), cluster.report());
    let lag = ctl(&["replication", "--json"]).json();
    for id in cluster.ids() {
        let node = &lag["nodes"][id.to_string()];
        assert_eq!(node["reachable"], true, "{lag}");
        assert_eq!(node["missing_blobs"], 0, "{lag}");
    }

    // `status`: healthy, the right primary, every gateway URL.
    let mut status = None;
    let healthy = wait_until(CONVERGE, || {
        let run = ctl(&["status"]);
        let done = run.success;
        status = Some(run);
        done
    });
    let status = status.expect("ran status");
    assert!(healthy, "status never healthy: {}\n{}", status.summary(), cluster.report());
    assert!(status.last_line().starts_with(&format!("healthy: 3 of 3 members reachable, primary node {primary}")), "{}", status.summary());
    for id in cluster.ids() {
        assert!(status.stdout.contains(&cluster.url(id)), "gateway URL of node {id} missing: {}", status.summary());
    }
    assert!(status.stdout.contains("primary") && status.stdout.contains("follower"), "{}", status.summary());
    let json = ctl(&["status", "--json"]);
    ok(&json, "status --json");
    let json = json.json();
    assert_eq!(json["primary"], primary, "{json}");
    assert_eq!(json["healthy"], true, "{json}");
    let members = json["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{json}");
    for m in members {
        assert_eq!(m["reachable"], true, "{json}");
        let s = &m["status"];
        assert_eq!(s["version"], env!("CARGO_PKG_VERSION"), "{json}");
        assert!(s["disk"]["total_bytes"].as_u64().unwrap_or(0) > 0, "{json}");
        assert_eq!(s["blobs"]["count"], 2, "every node holds both zips: {json}");
        assert_eq!(s["term"], members[0]["status"]["term"], "{json}");
        let expected_role = if m["node_id"] == primary { "primary" } else { "follower" };
        assert_eq!(m["role"], expected_role, "{json}");
    }

    // `modules list` and `modules show`: hashes and the three holders.
    let list = ctl(&["modules", "list"]);
    ok(&list, "modules list");
    for v in [&a, &b] {
        assert!(list.stdout.contains(&v.path) && list.stdout.contains(&v.version), "{}", list.summary());
    }
    assert!(list.stdout.contains("1,2,3") && list.last_line().starts_with("2 version(s)"), "{}", list.summary());
    let only_a = ctl(&["modules", "list", "example.com/ctl/a", "--json"]).json();
    let versions = only_a["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "{only_a}");
    assert_eq!(versions[0]["module"], a.path, "{only_a}");
    assert_eq!(versions[0]["zip"]["holders"], serde_json::json!([1, 2, 3]), "{only_a}");
    assert_eq!(versions[0]["zip"]["size"], a.zip.len(), "{only_a}");

    let show = ctl(&["modules", "show", &a.spec()]);
    ok(&show, "modules show");
    assert!(show.stdout.contains(&a.zip_sha256()), "{}", show.summary());
    assert!(show.stdout.contains("1,2,3"), "{}", show.summary());
    assert!(show.stdout.contains(&format!("{} {} h1:", a.path, a.version)), "go.sum line: {}", show.summary());
    let shown = ctl(&["modules", "show", &b.path, "--json"]).json();
    assert_eq!(shown["versions"][0]["version"], b.version, "{shown}");
    assert_eq!(shown["versions"][0]["zip"]["sha256"], b.zip_sha256(), "{shown}");
    assert_eq!(shown["versions"][0]["zip"]["holders"], serde_json::json!([1, 2, 3]), "{shown}");

    let unknown = ctl(&["modules", "show", "example.com/ctl/a@v9.9.9"]);
    assert!(!unknown.success && unknown.stderr.contains("not in the catalog"), "{}", unknown.summary());
    let malformed = ctl(&["modules", "show", "Example..com/x"]);
    assert!(!malformed.success && malformed.stderr.contains("module \"Example..com/x\""), "{}", malformed.summary());

    // `verify` finds a blob corrupted on one node and repairs it from a peer.
    let follower = cluster.others(primary)[0];
    let blob = cluster.node(follower).blob_path(&b.zip_sha256());
    let mut bytes = std::fs::read(&blob).expect("the follower holds b's zip");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).expect("make the blob writable");
    std::fs::write(&blob, &bytes).expect("corrupt the blob");
    let verified = ctl(&["verify", "--json"]);
    ok(&verified, "verify");
    let verified = verified.json();
    assert_eq!(verified["corrupt"], 1, "{verified}");
    assert_eq!(verified["unrepaired"], 0, "{verified}");
    for node in verified["nodes"].as_array().expect("nodes") {
        let expected = if node["node_id"] == follower {
            serde_json::json!([{ "sha256": b.zip_sha256(), "size": b.zip.len(), "repaired": true, "error": null }])
        } else {
            serde_json::json!([])
        };
        assert_eq!(node["corrupt"], expected, "{verified}");
        assert_eq!(node["checked_blobs"], if node["node_id"] == follower { 1 } else { 2 }, "{verified}");
    }
    assert!(std::fs::read(&blob).expect("repaired blob") == b.zip, "the repaired copy differs from the origin's zip");
    assert_eq!(origin.count(&b.url_path("zip")), 1, "repaired from a peer, not upstream: {:?}", origin.requests());
    let again = ctl(&["verify"]);
    ok(&again, "verify after the repair");
    assert!(again.last_line().contains("every blob matches its sha256 on every node"), "{}", again.summary());

    // `purge` through a follower: gone from every node, recorded with the
    // token's name, fetched again from upstream on the next request.
    let via_follower = format!("{},{all}", cluster.layout.member(follower).cluster);
    let purged = flotillactl(&via_follower, Some(OTHER_TOKEN), &["purge", "--yes", &a.spec()]);
    ok(&purged, "purge");
    for id in cluster.ids() {
        let addr = cluster.layout.member(id).cluster.to_string();
        cluster.wait_for(&format!("node {id} to drop {}", a.spec()), CONVERGE, || {
            let run = flotillactl(&addr, Some(ADMIN_TOKEN), &["modules", "show", &a.spec()]);
            !run.success && run.stderr.contains("not in the catalog")
        });
    }
    let audit = ctl(&["audit", "--json"]).json();
    let last = audit["entries"].as_array().and_then(|e| e.last()).cloned().expect("an audit record");
    assert_eq!(last["who"], "ci-bot", "{audit}");
    assert_eq!(last["action"], "purge", "{audit}");
    assert_eq!(last["target"], a.spec(), "{audit}");
    assert_eq!(last["via"], follower, "{audit}");
    assert!(last["result"].as_str().is_some_and(|r| r.starts_with("ok")), "{audit}");
    let verify_record = audit["entries"].as_array().and_then(|e| e.iter().find(|r| r["action"] == "verify")).cloned();
    let verify_record = verify_record.expect("verify is in the audit log");
    assert_eq!(verify_record["who"], "alice", "{audit}");
    assert_eq!(verify_record["result"], "ok: 1 corrupt, 1 repaired", "{audit}");
    let table = ctl(&["audit"]);
    ok(&table, "audit");
    assert!(table.stdout.contains("ci-bot") && table.stdout.contains(&a.spec()), "{}", table.summary());
    let again = get_following(&format!("{}{}", cluster.url(follower), a.url_path("zip"))).expect("zip after the purge");
    assert_eq!(again.status, 200, "{}", again.summary());
    assert_eq!(origin.count(&a.url_path("zip")), 2, "fetched again after the purge: {:?}", origin.requests());

    // `members list`: three voters, all in cluster.peers.
    let members = ctl(&["members", "list", "--json"]);
    ok(&members, "members list");
    let members = members.json();
    assert_eq!(members["peers_differ"], false, "{members}");
    for (i, m) in members["members"].as_array().expect("members").iter().enumerate() {
        assert_eq!(m["node_id"], i as u64 + 1, "{members}");
        assert_eq!(m["membership"], "voter", "{members}");
        assert_eq!(m["addr"], cluster.layout.member(i as u64 + 1).cluster.to_string(), "{members}");
        assert_eq!(m["in_cluster_peers"], true, "{members}");
    }
    let table = ctl(&["members", "list"]);
    assert!(table.success && table.stdout.contains("voter") && !table.stdout.contains("differs"), "{}", table.summary());

    // Wrong token, a gateway port: clear errors, exit status 1.
    let wrong = flotillactl(&all, Some("not-the-admin-token-0000"), &["status"]);
    assert_eq!(wrong.code, Some(1), "{}", wrong.summary());
    assert!(wrong.stderr.contains("wrong admin token"), "{}", wrong.summary());
    let gateway = flotillactl(&cluster.addr(primary).to_string(), Some(ADMIN_TOKEN), &["modules", "list"]);
    assert_eq!(gateway.code, Some(1), "{}", gateway.summary());
    assert!(gateway.stderr.contains("is this the cluster port"), "{}", gateway.summary());

    // A killed follower: `status` says so and exits non-zero.
    cluster.node_mut(follower).kill9();
    let down = ctl(&["status"]);
    assert_eq!(down.code, Some(2), "{}", down.summary());
    assert!(down.last_line().starts_with("degraded:"), "{}", down.summary());
    assert!(down.last_line().contains(&format!("node {follower} is unreachable")), "{}", down.summary());
    assert!(down.stdout.contains("NO"), "{}", down.summary());
    let down = ctl(&["status", "--json"]);
    assert_eq!(down.code, Some(2), "{}", down.summary());
    let down = down.json();
    assert_eq!(down["healthy"], false, "{down}");
    let dead = down["members"].as_array().expect("members").iter().find(|m| m["node_id"] == follower).cloned().expect("the follower");
    assert_eq!(dead["reachable"], false, "{down}");
    assert_eq!(down["primary"], primary, "the primary keeps its quorum: {down}");

    // Restarted with an edited cluster.peers, the node says at start-up that
    // the raft membership is what counts, and `members list` shows the drift.
    let edited = format!("{},4=127.0.0.1:9", cluster.layout.peers());
    cluster.node_mut(follower).options_mut().env.push(("FLOTILLA_CLUSTER__PEERS".to_string(), edited));
    cluster.node_mut(follower).restart();
    cluster.node(follower).wait_for_log("differs from the raft membership", CONVERGE);
    let addr = cluster.layout.member(follower).cluster.to_string();
    let drift = flotillactl(&addr, Some(ADMIN_TOKEN), &["members", "list"]);
    assert!(drift.success && drift.stdout.contains("not a member"), "{}", drift.summary());
    assert!(drift.last_line().contains("cluster.peers differs from the raft membership"), "{}", drift.summary());
}

#[test]
fn ctl_without_a_cluster_says_what_to_do() {
    let dead = format!("127.0.0.1:{}", harness::node::free_port());
    for args in [&["status"][..], &["replication"], &["modules", "list"], &["audit"], &["verify"]] {
        let run = flotillactl(&dead, Some(ADMIN_TOKEN), args);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.summary());
        assert!(run.stderr.contains("no node could answer") && run.stderr.contains("cannot connect"), "{args:?}: {}", run.summary());
        assert!(run.stderr.contains("FLOTILLA_CLUSTER"), "{args:?}: {}", run.summary());
    }
    let no_token = flotillactl(&dead, None, &["status"]);
    assert!(!no_token.success && no_token.stderr.contains("no admin token"), "{}", no_token.summary());
    let bad_flag = flotillactl(&dead, Some(ADMIN_TOKEN), &["status", "--bogus"]);
    assert!(!bad_flag.success && bad_flag.stderr.contains("--bogus"), "{}", bad_flag.summary());
    let bad_show = flotillactl(&dead, Some(ADMIN_TOKEN), &["modules", "show", "example.com/m@"]);
    assert!(!bad_show.success && bad_show.stderr.contains("is not module or module@version"), "{}", bad_show.summary());

    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef flotillactl"),
        ("fish", "complete -c flotillactl"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = flotillactl(&dead, None, &["completion", shell]);
        assert!(run.success && run.stdout.contains(marker) && run.stdout.contains("replication"), "{shell}: {}", run.summary());
    }
    let help = flotillactl(&dead, None, &["warm", "--help"]);
    assert!(help.success && help.stdout.contains("Examples:") && help.stdout.contains("--file go.sum"), "{}", help.summary());
}

#[test]
fn ctl_works_against_a_single_node_on_admin_listen() {
    let v = ModuleSet::make_version("example.com/one/m", "m", "v1.0.0");
    let mut set = ModuleSet::default();
    set.insert(v.clone());
    let origin = Origin::start(set);
    let dir = tempfile::tempdir().expect("temp dir");
    // The first token file format: one bare token, named `admin`.
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let admin = format!("127.0.0.1:{}", harness::node::free_port());
    let node =
        Node::start(NodeOptions::new(origin.url()).env("FLOTILLA_ADMIN__TOKEN_FILE", &token_file).env("FLOTILLA_ADMIN__LISTEN", &admin));
    let ctl = |args: &[&str]| flotillactl(&admin, Some(ADMIN_TOKEN), args);

    let status = ctl(&["status"]);
    ok(&status, "status");
    assert!(status.stdout.contains("standalone") && status.stdout.contains(&node.url()), "{}", status.summary());
    assert!(status.last_line().starts_with("healthy: 1 of 1 members reachable"), "{}", status.summary());
    let me = ctl(&["status", "--json"]).json()["members"][0]["node_id"].clone();

    let before_ms = now_ms();
    let warmed = ctl(&["warm", &v.spec()]);
    ok(&warmed, "warm");
    let after_ms = now_ms();
    assert!(warmed.stdout.contains("1 fetched"), "{}", warmed.summary());
    let again = ctl(&["warm", &v.spec()]);
    assert!(again.success && again.stdout.contains("0 fetched (0 B), 1 already cached"), "{}", again.summary());
    assert_eq!(origin.count(&v.url_path("zip")), 1, "{:?}", origin.requests());
    let shown = ctl(&["modules", "show", &v.spec(), "--json"]).json();
    assert_eq!(shown["versions"][0]["zip"]["holders"], serde_json::json!([me]), "{shown}");
    assert_eq!(shown["versions"][0]["zip"]["sha256"], v.zip_sha256(), "{shown}");
    // When the zip was fetched from upstream, recorded at fill time.
    let fetched = shown["versions"][0]["zip"]["fetched_at_ms"].as_u64().unwrap_or_else(|| panic!("no fetch time: {shown}"));
    assert!((before_ms..=after_ms).contains(&fetched), "fetched at {fetched}, warmed between {before_ms} and {after_ms}: {shown}");
    let table = ctl(&["modules", "show", &v.spec()]);
    let line = table.stdout.lines().find(|l| l.contains("zip fetched")).unwrap_or_else(|| panic!("{}", table.summary()));
    assert!(line.contains(shown["versions"][0]["zip"]["fetched"].as_str().expect("RFC 3339 fetch time")), "{}", table.summary());
    // verify --sumdb without a checksum database says what to do.
    let no_db = ctl(&["verify", "--sumdb"]);
    assert_eq!(no_db.code, Some(1), "{}", no_db.summary());
    assert!(no_db.stderr.contains("no checksum database is configured") && no_db.stderr.contains("[[sumdb]]"), "{}", no_db.summary());

    // Corrupt: verify quarantines it; with no peer, the next request refetches it.
    let blob = node.blob_path(&v.zip_sha256());
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).expect("make the blob writable");
    std::fs::write(&blob, b"rotten").expect("corrupt the blob");
    let verified = ctl(&["verify"]);
    assert_eq!(verified.code, Some(1), "{}", verified.summary());
    assert!(
        verified.stdout.contains("quarantined") && verified.stderr.contains("1 corrupt blob(s) not repaired"),
        "{}",
        verified.summary()
    );
    let zip = node.get(&v.url_path("zip"));
    assert_eq!(zip.status, 200, "zip after verify");
    assert!(zip.body == v.zip, "the refetched zip differs");
    assert_eq!(origin.count(&v.url_path("zip")), 2, "{:?}", origin.requests());

    // `doctor --client` reads the real go command's settings.
    let home = tempfile::tempdir().expect("go home");
    let home_dir = home.path().display().to_string();
    let go_env = |goproxy: &'static str| {
        vec![
            ("HOME", home_dir.clone()),
            ("GOENV", "off".to_string()),
            ("GOTOOLCHAIN", "local".to_string()),
            ("GOFLAGS", String::new()),
            ("GOPRIVATE", String::new()),
            ("GONOPROXY", String::new()),
            ("GONOSUMDB", String::new()),
            ("GOSUMDB", "sum.golang.org".to_string()),
            ("GOPROXY", if goproxy.is_empty() { node.url() } else { goproxy.to_string() }),
        ]
    };
    let run_doctor = |env: Vec<(&str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        flotillactl_env(&admin, Some(ADMIN_TOKEN), &["doctor", "--client"], &env)
    };
    let wrong = run_doctor(go_env("https://proxy.golang.org,direct"));
    assert_eq!(wrong.code, Some(2), "{}", wrong.summary());
    assert!(
        wrong.stdout.contains("problem: GOPROXY: GOPROXY is \"https://proxy.golang.org,direct\", not the mirror"),
        "{}",
        wrong.summary()
    );
    for line in [
        format!("export GOPROXY=\"{}\"", node.url()),
        format!("$env:GOPROXY=\"{}\"", node.url()),
        format!("set \"GOPROXY={}\"", node.url()),
    ] {
        assert!(wrong.stdout.contains(&line), "missing {line:?}: {}", wrong.summary());
    }
    let right = run_doctor(go_env(""));
    assert!(right.success && right.last_line().starts_with("ok: the go command on this machine uses the mirror"), "{}", right.summary());

    // Served (and so kept in memory) before the purge; fetched again after it.
    for kind in ["info", "mod"] {
        assert_eq!(node.get(&v.url_path(kind)).status, 200, "{kind} before the purge");
    }
    let fetched = |kind: &str| origin.count(&v.url_path(kind));
    let before = (fetched("info"), fetched("mod"));
    let purged = ctl(&["purge", "--yes", &v.spec()]);
    ok(&purged, "purge");
    let gone = ctl(&["modules", "show", &v.spec()]);
    assert!(!gone.success && gone.stderr.contains("not in the catalog"), "{}", gone.summary());
    for kind in ["info", "mod"] {
        assert_eq!(node.get(&v.url_path(kind)).status, 200, "{kind} after the purge");
    }
    assert_eq!((fetched("info"), fetched("mod")), (before.0 + 1, before.1 + 1), "a purged version's answers are not served from memory");
    let audit = ctl(&["audit", "--json"]).json();
    let actions: Vec<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["who"].as_str().unwrap_or("").to_string(), e["action"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(actions, [("admin".to_string(), "verify".to_string()), ("admin".to_string(), "purge".to_string())], "{audit}");
}

#[test]
fn doctor_names_upstream_ca_file_for_an_untrusted_certificate() {
    let v = ModuleSet::make_version("example.com/doc/m", "m", "v1.0.0");
    let mut set = ModuleSet::default();
    set.insert(v.clone());
    let origin = Origin::start(set);
    let intercepting = harness::tls::UntrustedTls::start();
    // The untrusted proxy first; `|` falls through to the origin on its error.
    let upstream = format!("{}|{}", intercepting.url(), origin.url());
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let cluster =
        Cluster::start(&upstream, ClusterOptions { env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() });
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let all: Vec<String> = cluster.ids().iter().map(|&id| cluster.layout.member(id).cluster.to_string()).collect();
    let all = all.join(",");

    let run = flotillactl(&all, Some(ADMIN_TOKEN), &["doctor", "--module", &v.spec()]);
    assert_eq!(run.code, Some(2), "{}", run.summary());
    for id in cluster.ids() {
        let tls = format!("PROBLEM node {id} upstream {}: tls failed", intercepting.url());
        assert!(run.stdout.contains(&tls), "missing {tls:?}: {}", run.summary());
        let fine = format!("ok      node {id} upstream {}: DNS, TCP, TLS and HTTP work", origin.url());
        assert!(run.stdout.contains(&fine), "missing {fine:?}: {}", run.summary());
    }
    assert!(run.stdout.contains("upstream.ca_file") && run.stdout.contains("corporate CA bundle"), "{}", run.summary());
    for check in ["ok      quorum: 3 of 3 voters reachable", "ok      clock skew:", &format!("ok      primary: node {primary}")] {
        assert!(run.stdout.contains(check), "missing {check:?}: {}", run.summary());
    }
    let round_trip = format!("ok      round trip {}: fetched through node {primary}", v.spec());
    assert!(run.stdout.contains(&round_trip) && run.stdout.contains("sha256 and h1:"), "{}", run.summary());
    // The harness runs nodes without a checksum database: doctor says so (not counted as a problem).
    assert!(run.stdout.contains("ok      checksum databases: none configured (sumdb = [])"), "{}", run.summary());
    // Free disk is the machine's own: a nearly full disk adds its PROBLEM lines.
    let disk = run.stdout.lines().filter(|l| l.starts_with("PROBLEM") && l.contains(" disk: ")).count();
    assert!(run.last_line().starts_with(&format!("{} problem(s) found", 3 + disk)), "{}", run.summary());

    let json = flotillactl(&all, Some(ADMIN_TOKEN), &["doctor", "--module", &v.spec(), "--json"]);
    assert_eq!(json.code, Some(2), "{}", json.summary());
    assert_eq!(json.json()["problems"], 3, "{}", json.summary());
}

#[test]
fn admin_tokens_rotate_without_a_restart_and_a_bad_edit_keeps_them() {
    const NEW_TOKEN: &str = "bob-new-token-0123456789abcdef";
    const CAROL_TOKEN: &str = "carol-token-0123456789abcdef";
    let origin = Origin::start(ModuleSet::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_secret(dir.path(), "admin.tokens", &format!("alice:{ADMIN_TOKEN}"));
    let token_file = path.display().to_string();
    let cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() },
    );
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let all: Vec<String> = cluster.ids().iter().map(|&id| cluster.layout.member(id).cluster.to_string()).collect();
    let all = all.join(",");
    // `status` asks every member with the caller's token: all three must take it.
    let healthy = |token: &str| {
        let run = flotillactl(&all, Some(token), &["status"]);
        run.success && run.last_line().starts_with("healthy: 3 of 3 members reachable")
    };
    let refused = |token: &str| {
        let run = flotillactl(&all, Some(token), &["status"]);
        run.code == Some(1) && run.stderr.contains("wrong admin token")
    };
    assert!(healthy(ADMIN_TOKEN));
    assert!(refused(NEW_TOKEN));

    // The new token joins (clients switch), then the old one leaves.
    std::fs::write(&path, format!("alice:{ADMIN_TOKEN}\nbob:{NEW_TOKEN}\n")).expect("add the new token");
    assert!(wait_until(Duration::from_secs(10), || healthy(NEW_TOKEN)), "the new token was not accepted");
    assert!(healthy(ADMIN_TOKEN), "the old token stays until it is removed");
    std::fs::write(&path, format!("bob:{NEW_TOKEN}\n")).expect("remove the old token");
    assert!(wait_until(Duration::from_secs(10), || refused(ADMIN_TOKEN)), "the removed token is still accepted");
    assert!(healthy(NEW_TOKEN));
    for id in cluster.ids() {
        cluster.node(id).wait_for_log("admin.token_file changed", CONVERGE);
    }

    // A bad edit neither locks the operator out nor lets its new token in.
    std::fs::write(&path, format!("bob:{NEW_TOKEN}\ncarol:{CAROL_TOKEN}\nno name here\n")).expect("break the file");
    // Every member reads it again at its next admin call, and says so.
    let noticed = wait_until(CONVERGE, || {
        assert!(healthy(NEW_TOKEN), "a bad token file locked the old tokens out");
        cluster.ids().iter().all(|&id| cluster.node(id).logs().contains("the admin tokens read before stay in force"))
    });
    assert!(noticed, "no node logged the bad token file");
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        assert!(healthy(NEW_TOKEN), "a bad token file locked the old tokens out");
        assert!(refused(CAROL_TOKEN), "a token of a bad file was accepted");
    }
    // Fixed, it is read again.
    std::fs::write(&path, format!("bob:{NEW_TOKEN}\ncarol:{CAROL_TOKEN}\n")).expect("fix the file");
    assert!(wait_until(Duration::from_secs(10), || healthy(CAROL_TOKEN)), "the fixed file was not read");
}
