//! `flotillactl` against three real `flotilla` processes: the admin API's
//! refusals (token, malformed targets, unknown versions, unreachable nodes,
//! a node without `admin.token_file`) are clear and change nothing. The
//! purge itself is in `blob_replication.rs`, next to the blob collection it
//! triggers.

use std::time::Duration;

use harness::cluster::{get_following, write_secret, Cluster, ClusterOptions};
use harness::ctl::{flotillactl, CtlRun, ADMIN_TOKEN};
use harness::node::free_port;
use harness::{ModuleSet, Origin};

const CONVERGE: Duration = Duration::from_secs(20);

fn refused(run: &CtlRun, what: &str, expected: &str) {
    assert!(!run.success, "{what}: flotillactl succeeded: {}", run.summary());
    assert!(run.stderr.contains(expected), "{what}: expected {expected:?} in the error: {}", run.summary());
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.summary());
}

#[test]
fn admin_refusals_are_clear_and_change_nothing() {
    let v = ModuleSet::make_version("example.com/adm/m", "m", "v1.0.0");
    let mut set = ModuleSet::default();
    set.insert(v.clone());
    let origin = Origin::start(set);
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = write_secret(dir.path(), "admin.token", ADMIN_TOKEN).display().to_string();
    let mut cluster = Cluster::start(
        &origin.url(),
        ClusterOptions { env: vec![("FLOTILLA_ADMIN__TOKEN_FILE", token_file.as_str())], ..Default::default() },
    );
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let zip = get_following(&format!("{}{}", cluster.url(primary), v.url_path("zip"))).expect("warm the zip");
    assert_eq!(zip.status, 200, "{}", zip.summary());
    let all: Vec<String> = cluster.ids().iter().map(|&id| cluster.layout.member(id).cluster.to_string()).collect();
    let all = all.join(",");
    let spec = v.spec();

    refused(&flotillactl(&all, Some("not-the-admin-token-0000"), &["purge", &spec]), "wrong token", "wrong admin token");
    assert!(
        cluster.ids().iter().any(|&id| cluster.node(id).logs().contains("refused admin RPC: wrong admin token")),
        "no node logged the refused call\n{}",
        cluster.report()
    );
    refused(&flotillactl(&all, None, &["purge", &spec]), "no token", "no admin token: set FLOTILLA_ADMIN_TOKEN");
    refused(&flotillactl(&all, Some(ADMIN_TOKEN), &["purge", "example.com/adm/m"]), "no version", "is not module@version");
    refused(&flotillactl(&all, Some(ADMIN_TOKEN), &["purge", "example.com/adm/m@latest"]), "a query, not a version", "version \"latest\"");
    refused(&flotillactl(&all, Some(ADMIN_TOKEN), &["purge", "Example..com/x@v1.0.0"]), "a bad module path", "module \"Example..com/x\"");
    refused(&flotillactl(&all, Some(ADMIN_TOKEN), &["purge", "example.com/adm/m@v9.9.9"]), "unknown version", "not in the catalog");

    // A dead address is skipped; only dead addresses are reported as such.
    let dead = format!("127.0.0.1:{}", free_port());
    let run = flotillactl(&format!("{dead},{all}"), Some(ADMIN_TOKEN), &["purge", "example.com/adm/m@v9.9.9"]);
    refused(&run, "dead address first", "not in the catalog");
    refused(&flotillactl(&dead, Some(ADMIN_TOKEN), &["purge", &spec]), "dead address only", "cannot connect");
    let gateway = cluster.addr(primary).to_string();
    refused(&flotillactl(&gateway, Some(ADMIN_TOKEN), &["purge", &spec]), "a gateway port", "is this the cluster port");

    // A node without admin.token_file refuses every admin call.
    let follower = cluster.others(primary)[0];
    cluster.node_mut(follower).options_mut().env.retain(|(k, _)| k != "FLOTILLA_ADMIN__TOKEN_FILE");
    cluster.node_mut(follower).restart();
    let addr = cluster.layout.member(follower).cluster.to_string();
    refused(&flotillactl(&addr, Some(ADMIN_TOKEN), &["purge", &spec]), "admin API disabled", "admin API is disabled on node");

    // Nothing changed: every node still serves the version, fetched once.
    cluster.wait_converged(&[1, 2, 3], CONVERGE);
    for id in cluster.ids() {
        let f = get_following(&format!("{}{}", cluster.url(id), v.url_path("zip"))).expect("zip");
        assert_eq!(f.status, 200, "node {id} after the refused calls: {}", f.summary());
        assert!(f.body == v.zip);
    }
    assert_eq!(origin.count(&v.url_path("zip")), 1, "{:?}", origin.requests());

    let help = flotillactl(&all, None, &["--help"]);
    assert!(help.success && help.stdout.contains("FLOTILLA_CLUSTER") && help.stdout.contains("purge"), "{}", help.summary());
}
