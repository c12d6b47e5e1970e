//! `flotillactl members add|promote|remove` against real `flotilla`
//! processes over mutual TLS, while the real go command keeps downloading
//! modules through the cluster: a fresh fourth node joins as a learner,
//! catches up (catalog and blobs) and serves reads through its own gateway,
//! is promoted, and an old node is removed and stopped — with no failed
//! download. And the last voter is never removed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::cluster::{make_certs, write_secret, Cluster, ClusterOptions, Member};
use harness::ctl::{flotillactl_env, CtlRun, ADMIN_TOKEN};
use harness::node::free_port;
use harness::{wait_until, GoEnv, ModuleSet, ModuleVersion, Node, Origin};

const CONVERGE: Duration = Duration::from_secs(30);
const MODULES: usize = 200;

fn ok(run: &CtlRun, what: &str) {
    assert!(run.success, "{what}: {}", run.summary());
}

/// The membership `members list --json` shows: (id, "voter"/"learner"/null).
fn membership(list: &serde_json::Value) -> Vec<(u64, Option<String>)> {
    list["members"]
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| (m["node_id"].as_u64().expect("node_id"), m["membership"].as_str().map(String::from)))
        .collect()
}

#[test]
fn a_learner_joins_is_promoted_and_an_old_node_is_removed_while_go_downloads() {
    let mut set = ModuleSet::default();
    let versions: Vec<ModuleVersion> =
        (0..MODULES).map(|i| ModuleSet::make_version(&format!("example.com/members/m{i}"), &format!("m{i}"), "v1.0.0")).collect();
    for v in &versions {
        set.insert(v.clone());
    }
    let origin = Origin::start(set);
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.tokens", &format!("ops:{ADMIN_TOKEN}")).display().to_string();
    let mut cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { tls: true, env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() },
    );
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let certs = cluster.layout.tls.clone().expect("TLS certs");
    let tls_env = [
        ("FLOTILLA_TLS_CA_FILE", certs.join("ca.crt").display().to_string()),
        ("FLOTILLA_TLS_CERT_FILE", certs.join("flotillactl.crt").display().to_string()),
        ("FLOTILLA_TLS_KEY_FILE", certs.join("flotillactl.key").display().to_string()),
    ];
    let tls_env: Vec<(&str, &str)> = tls_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The node removed later is a follower; the go command and flotillactl
    // use the other two (and later the new node).
    let victim = *cluster.others(primary).last().expect("a follower");
    let kept: Vec<u64> = cluster.ids().into_iter().filter(|&id| id != victim).collect();
    let ctl_addrs: String = kept.iter().map(|&id| cluster.layout.member(id).cluster.to_string()).collect::<Vec<_>>().join(",");
    let ctl = |args: &[&str]| flotillactl_env(&ctl_addrs, Some(ADMIN_TOKEN), args, &tls_env);
    let list = || {
        let run = ctl(&["members", "list", "--json"]);
        ok(&run, "members list");
        membership(&run.json())
    };
    assert_eq!(
        list(),
        vec![(1, Some("voter".into())), (2, Some("voter".into())), (3, Some("voter".into()))],
        "the bootstrapped membership"
    );

    // The go command downloads through the kept nodes the whole time: each
    // round a fresh module cache, one new module (a miss: fetched by the
    // primary and committed through raft) and one cached module.
    let proxy = kept.iter().map(|&id| cluster.url(id)).collect::<Vec<_>>().join("|");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let go_thread = {
        let (stop, failures, rounds, versions) = (stop.clone(), failures.clone(), rounds.clone(), versions.clone());
        std::thread::spawn(move || {
            let mut next = 1;
            while !stop.load(Ordering::Relaxed) && next < MODULES {
                let go = GoEnv::new(&proxy);
                go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
                let specs = [versions[next].spec(), versions[0].spec()];
                let out = go.run(&["mod", "download", &specs[0], &specs[1]]);
                if !out.success {
                    failures.lock().unwrap().push(format!("round {next}: {out}"));
                }
                rounds.fetch_add(1, Ordering::Relaxed);
                next += 1;
            }
        })
    };
    let started = wait_until(Duration::from_secs(60), || rounds.load(Ordering::Relaxed) >= 2);
    assert!(started, "the go command did not complete 2 rounds in 60 s: {:?}", failures.lock().unwrap());

    // A fourth node: its own certificate from `flotilla certs` re-run with
    // its id (the CA in the folder is reused), cluster.join = true.
    make_certs(&certs, &[4]);
    let new = Member {
        id: 4,
        gateway: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
        cluster: std::net::SocketAddr::from(([127, 0, 0, 1], free_port())),
    };
    cluster.layout.members.push(new);
    let options = cluster.layout.options(
        4,
        &origin.url(),
        &[("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str()), ("FLOTILLA_CLUSTER__JOIN", "true")],
    );
    let mut fourth = Node::start_on(options, new.gateway);
    let added = ctl(&["members", "add", "4", &new.cluster.to_string()]);
    ok(&added, "members add");
    assert!(added.stdout.contains("added node 4 as a learner"), "{}", added.summary());
    let after_add = list();
    assert!(after_add.contains(&(4, Some("learner".into()))), "{after_add:?}");
    assert!(after_add.contains(&(victim, Some("voter".into()))), "{after_add:?}");
    let again = ctl(&["members", "add", "4", &new.cluster.to_string()]);
    assert!(!again.success && again.stderr.contains("already a member"), "{}", again.summary());

    // The learner catches up: the catalog (its gateway serves what the
    // cluster cached, from its own blob store) and the blobs.
    let first = &versions[0];
    let caught_up = wait_until(CONVERGE, || fourth.blob_path(&first.zip_sha256()).is_file());
    assert!(caught_up, "node 4 never received the blob of {}\n{}", first.spec(), cluster.report());
    // Answered by node 4 itself (200, no redirect to the primary).
    let zip = fourth.get(&first.url_path("zip"));
    assert_eq!(zip.status, 200, "{}", zip.summary());
    assert!(zip.body == first.zip, "node 4 served other bytes for {}", first.spec());
    // The real go command through the learner alone: a cached module and a
    // miss (sent to the primary).
    let go = GoEnv::new(&fourth.url());
    go.write_file("go.mod", "module example.com/app\n\ngo 1.18\n");
    go.ok(&["mod", "download", &first.spec(), &versions[MODULES - 1].spec()]);
    let learner_holds_all = wait_until(CONVERGE, || {
        let status = ctl(&["status", "--json"]);
        !status.stdout.is_empty()
            && status.json()["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["node_id"] == 4 && m["reachable"] == true && m["missing_blobs"] == 0))
    });
    assert!(learner_holds_all, "node 4 never held every blob: {}", ctl(&["status"]).summary());

    // Promote it.
    let promoted = ctl(&["members", "promote", "4"]);
    ok(&promoted, "members promote");
    assert!(list().contains(&(4, Some("voter".into()))), "node 4 not a voter after promote");
    let twice = ctl(&["members", "promote", "4"]);
    assert!(!twice.success && twice.stderr.contains("already a voter"), "{}", twice.summary());

    // Remove the old follower, then stop it.
    let removed = ctl(&["members", "remove", &victim.to_string()]);
    ok(&removed, "members remove");
    let after_remove = list();
    assert!(!after_remove.iter().any(|(id, m)| *id == victim && m.is_some()), "node {victim} still a member: {after_remove:?}");
    cluster.node_mut(victim).kill9();
    let mut table = ctl(&["members", "list"]);
    ok(&table, "members list");
    assert!(table.stdout.contains("learner") || table.stdout.contains("voter"), "{}", table.summary());

    // The cluster of 1, 2 (or the kept ones) and 4 commits new modules.
    let more = rounds.load(Ordering::Relaxed) + 3;
    let went_on = wait_until(Duration::from_secs(90), || rounds.load(Ordering::Relaxed) >= more);
    stop.store(true, Ordering::Relaxed);
    go_thread.join().expect("go thread");
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "the go command failed during the membership changes:\n{}", failures.join("\n"));
    assert!(went_on, "the go command made no progress after the removal");
    table = ctl(&["audit"]);
    ok(&table, "audit");
    for action in ["members add", "members promote", "members remove"] {
        assert!(table.stdout.contains(action), "audit lacks {action}: {}", table.summary());
    }
    assert!(table.stdout.contains("ops"), "{}", table.summary());
    let _ = fourth.stop();
}

#[test]
fn the_last_voter_is_never_removed() {
    let origin = Origin::start(ModuleSet::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.tokens", &format!("ops:{ADMIN_TOKEN}")).display().to_string();
    let cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { size: 1, order: vec![1], env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() },
    );
    cluster.wait_converged(&[1], CONVERGE);
    let addr = cluster.layout.member(1).cluster.to_string();
    for flags in [&[][..], &["--force"][..]] {
        let mut args = vec!["members", "remove", "1"];
        args.extend_from_slice(flags);
        let run = flotillactl_env(&addr, Some(ADMIN_TOKEN), &args, &[]);
        assert!(!run.success, "{}", run.summary());
        assert!(run.stderr.contains("last voter"), "{}", run.summary());
    }
    let bad = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "add", "2", "no-port"], &[]);
    assert!(!bad.success && bad.stderr.contains("host:port"), "{}", bad.summary());
    let missing = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "promote", "7"], &[]);
    assert!(!missing.success && missing.stderr.contains("not a member"), "{}", missing.summary());
    let list = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "list", "--json"], &[]);
    assert_eq!(membership(&list.json()), vec![(1, Some("voter".into()))]);

    // A learner at an address where nothing answers: promoting it would
    // leave the voters (1 and 2) without a quorum of reachable nodes, so
    // flotillactl warns and, without a terminal or --force, changes nothing.
    let dead = format!("127.0.0.1:{}", free_port());
    let added = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "add", "2", &dead], &[]);
    ok(&added, "members add of an unreachable learner");
    let promote = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "promote", "2"], &[]);
    assert!(!promote.success, "{}", promote.summary());
    assert!(promote.stderr.contains("warning") && promote.stderr.contains("--force"), "{}", promote.summary());
    let list = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "list", "--json"], &[]);
    assert_eq!(membership(&list.json()), vec![(1, Some("voter".into())), (2, Some("learner".into()))]);
    // Removing the learner leaves the voters as they are: no question asked.
    let removed = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "remove", "2"], &[]);
    ok(&removed, "members remove of a learner");
    let list = flotillactl_env(&addr, Some(ADMIN_TOKEN), &["members", "list", "--json"], &[]);
    assert_eq!(membership(&list.json()), vec![(1, Some("voter".into()))]);
}
