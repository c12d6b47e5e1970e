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
    write_private(&secret, "0123456789abcdef0123456789abcdef");
    let token = dir.path().join("admin-token");
    write_private(&token, "short");
    let data = dir.path().join("data");
    let out = flotilla()
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", "off", "--data-dir"])
        .arg(&data)
        .env("FLOTILLA_CLUSTER__PEERS", "1=127.0.0.1:0")
        .env("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT", "true")
        .env("FLOTILLA_CLUSTER__SECRET_FILE", &secret)
        .env("FLOTILLA_ADMIN__TOKEN_FILE", &token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("admin.token_file") && text.contains("at least 16"), "{text}");
    assert!(!data.join("cluster-id").exists(), "the node claimed its data dir before refusing the token");
}

fn write_private(path: &std::path::Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `flotilla serve` on a fresh data dir with `env`; its stderr, after it
/// refused to start.
fn refused_start(env: &[(&str, &std::ffi::OsStr)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = flotilla();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--upstream", "off", "--data-dir"]).arg(dir.path().join("data"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "the node started: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_private_glob_list_that_would_leak_is_refused_with_the_fix() {
    let text = refused_start(&[("FLOTILLA_UPSTREAM__PRIVATE", "*.corp.example, git.internal/*".as_ref())]);
    assert!(text.contains("upstream.private") && text.contains("write \"*.corp.example,git.internal/*\""), "{text}");
    let text = refused_start(&[("FLOTILLA_UPSTREAM__PRIVATE", "git.internal/[a-".as_ref())]);
    assert!(text.contains("upstream.private") && text.contains("malformed"), "{text}");
}

#[test]
fn replication_settings_that_would_spin_are_refused() {
    let text = refused_start(&[("FLOTILLA_REPLICATION__ANTI_ENTROPY_INTERVAL", "0s".as_ref())]);
    assert!(text.contains("replication.anti_entropy_interval must be at least"), "{text}");
    let text = refused_start(&[("FLOTILLA_REPLICATION__RETRY_MAX", "0s".as_ref())]);
    assert!(text.contains("replication.retry_max must be at least"), "{text}");
}

#[test]
fn secret_files_readable_by_others_are_refused_with_the_chmod_to_run() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster-secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = refused_start(&[
        ("FLOTILLA_CLUSTER__PEERS", "1=127.0.0.1:0".as_ref()),
        ("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT", "true".as_ref()),
        ("FLOTILLA_CLUSTER__SECRET_FILE", secret.as_os_str()),
    ]);
    assert!(text.contains(&format!("run `chmod 600 {}`", secret.display())), "{text}");
}

#[test]
fn a_cluster_without_tls_or_an_explicit_plaintext_setting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster-secret");
    write_private(&secret, "0123456789abcdef0123456789abcdef");
    let text =
        refused_start(&[("FLOTILLA_CLUSTER__PEERS", "1=127.0.0.1:0".as_ref()), ("FLOTILLA_CLUSTER__SECRET_FILE", secret.as_os_str())]);
    assert!(text.contains("flotilla certs") && text.contains("insecure_plaintext"), "{text}");
}

#[test]
fn certs_writes_a_ca_and_node_certificates_with_private_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = flotilla().args(["certs", "--nodes", "3", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in ["ca", "node-1", "node-2", "node-3", "flotillactl"] {
        assert!(dir.path().join(format!("{name}.crt")).exists(), "{name}.crt");
        let mode = std::fs::metadata(dir.path().join(format!("{name}.key"))).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}.key");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cluster.tls_cert_file"), "{text}");
}
