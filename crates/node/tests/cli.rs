//! The `flotilla` command line as a user meets it.

use std::process::Command;

fn flotilla() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
}

#[test]
fn help_explains_serve_and_its_defaults() {
    let out = flotilla().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["--listen", "--data-dir", "--upstream", "--config", "FLOTILLA_", "proxy.golang.org"] {
        assert!(text.contains(needle), "serve --help lacks {needle}:\n{text}");
    }
}

#[test]
fn bad_config_fails_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = flotilla().args(["serve", "--data-dir"]).arg(dir.path()).env("FLOTILLA_CACHE__LIST_TTL", "soon").output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("invalid configuration"), "{text}");
}

#[test]
fn upstream_direct_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let out = flotilla().args(["serve", "--listen", "127.0.0.1:0", "--upstream", "direct", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("direct"), "{text}");
}

#[test]
fn a_short_admin_token_stops_the_node_before_it_opens_raft() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster-secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, "short").unwrap();
    let data = dir.path().join("data");
    let out = flotilla()
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "off", "--data-dir"])
        .arg(&data)
        .env("FLOTILLA_CLUSTER__PEERS", "1=127.0.0.1:0")
        .env("FLOTILLA_CLUSTER__SECRET_FILE", &secret)
        .env("FLOTILLA_ADMIN__TOKEN_FILE", &token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("admin.token_file") && text.contains("at least 16"), "{text}");
    assert!(!data.join("cluster-id").exists(), "the node claimed its data dir before refusing the token");
}
