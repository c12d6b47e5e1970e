use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_need_no_file() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.gateway.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.data_dir, PathBuf::from("./flotilla-data"));
    assert_eq!(c.upstream.proxies, "https://proxy.golang.org");
    assert_eq!(c.cache.list_ttl, Duration::from_secs(60));
    assert_eq!(c.cache.negative_ttl, Duration::from_secs(600));
}

#[test]
fn file_then_env_override() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flotilla.toml");
    std::fs::write(&path, "node_id = 3\n[cache]\nlist_ttl = \"5s\"\n[upstream]\nproxies = \"http://a.example,http://b.example\"\n")
        .unwrap();
    let c = Config::load(Some(&path), env(&[("FLOTILLA_CACHE__LIST_TTL", "2s"), ("FLOTILLA_DATA_DIR", "/var/lib/x")])).unwrap();
    assert_eq!(c.node_id, 3);
    assert_eq!(c.cache.list_ttl, Duration::from_secs(2));
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/x"));
    assert_eq!(c.upstream.proxies, "http://a.example,http://b.example");
}

#[test]
fn other_tools_variables_are_ignored() {
    let c = Config::load(
        None,
        env(&[("FLOTILLA_CLUSTER", "n1:7000"), ("FLOTILLA_ADMIN_TOKEN", "x"), ("FLOTILLA_LOG", "debug"), ("FLOTILLA_NODE_ID", "2")]),
    )
    .unwrap();
    assert_eq!(c.node_id, 2);
}

#[test]
fn typos_are_reported() {
    let err = Config::load(None, env(&[("FLOTILLA_CACHE__LIST_TT", "2s")])).unwrap_err().to_string();
    assert!(err.contains("list_tt"), "{err}");
    let err = Config::load(None, env(&[("FLOTILLA_CACHE__LIST_TTL", "soon")])).unwrap_err().to_string();
    assert!(err.contains("invalid configuration"), "{err}");
}

#[test]
fn cluster_settings_from_env() {
    let c = Config::load(
        None,
        env(&[
            ("FLOTILLA_NODE_ID", "2"),
            ("FLOTILLA_CLUSTER__PEERS", "1=n1:7000, 2=n2:7000,3=n3:7000"),
            ("FLOTILLA_CLUSTER__SECRET_FILE", "/etc/flotilla/secret"),
            ("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT", "true"),
            ("FLOTILLA_GATEWAY__MODE", "forward"),
            ("FLOTILLA_RAFT__HEARTBEAT", "3s"),
            ("FLOTILLA_RAFT__ELECTION_TIMEOUT_MIN", "10s"),
            ("FLOTILLA_RAFT__ELECTION_TIMEOUT_MAX", "20s"),
        ]),
    )
    .unwrap();
    assert_eq!(c.cluster.peer_map().unwrap().get(&2).map(String::as_str), Some("n2:7000"));
    assert_eq!(c.gateway.mode, gateway::Mode::Forward);
    assert_eq!(c.raft.heartbeat, Duration::from_secs(3));
}

#[test]
fn replication_settings() {
    let c = Config::load(
        None,
        env(&[
            ("FLOTILLA_REPLICATION__WORKERS", "8"),
            ("FLOTILLA_REPLICATION__BANDWIDTH_LIMIT", "4MiB"),
            ("FLOTILLA_REPLICATION__SCRUB_RATE", "1000"),
            ("FLOTILLA_REPLICATION__PURGE_GRACE", "2s"),
        ]),
    )
    .unwrap();
    let r = &c.replication;
    assert_eq!((r.workers, r.bandwidth_limit, r.scrub_rate), (8, 4 << 20, 1000));
    assert_eq!(r.purge_grace, Duration::from_secs(2));
    assert_eq!(r.min_copies, 1);
    let err = Config::load(None, env(&[("FLOTILLA_REPLICATION__BANDWIDTH_LIMIT", "fast")])).unwrap_err().to_string();
    assert!(err.contains("not a size"), "{err}");
    let err = Config::load(None, env(&[("FLOTILLA_REPLICATION__MIN_COPIES", "2")])).unwrap_err().to_string();
    assert!(err.contains("min_copies"), "{err}");
}

#[test]
fn cluster_mistakes_are_explained() {
    let err = Config::load(None, env(&[("FLOTILLA_CLUSTER__PEERS", "1=n1:7000,2=n2:7000")])).unwrap_err().to_string();
    assert!(err.contains("secret_file"), "{err}");
    let err = Config::load(None, env(&[("FLOTILLA_NODE_ID", "5"), ("FLOTILLA_CLUSTER__PEERS", "1=n1:7000")])).unwrap_err().to_string();
    assert!(err.contains("not in cluster.peers"), "{err}");
    let err = Config::load(None, env(&[("FLOTILLA_CLUSTER__PEERS", "n1:7000")])).unwrap_err().to_string();
    assert!(err.contains("1=host:7000"), "{err}");
    let cluster = [("FLOTILLA_CLUSTER__PEERS", "1=n1:7000"), ("FLOTILLA_CLUSTER__SECRET_FILE", "/s")];
    let err = Config::load(None, env(&cluster)).unwrap_err().to_string();
    assert!(err.contains("tls_ca_file") && err.contains("flotilla certs") && err.contains("insecure_plaintext"), "{err}");
    let err = Config::load(None, env(&[cluster[0], cluster[1], ("FLOTILLA_CLUSTER__TLS_CA_FILE", "/ca.crt")])).unwrap_err().to_string();
    assert!(err.contains("all three"), "{err}");
    let mixed = [cluster[0], cluster[1], ("FLOTILLA_CLUSTER__TLS_CA_FILE", "/ca.crt"), ("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT", "true")];
    let err = Config::load(None, env(&mixed)).unwrap_err().to_string();
    assert!(err.contains("both set"), "{err}");
    let err = Config::load(None, env(&[("FLOTILLA_ADMIN__TOKEN_FILE", "/etc/flotilla/admin-token")])).unwrap_err().to_string();
    assert!(err.contains("admin.token_file") && err.contains("admin.listen"), "{err}");
    let single = env(&[("FLOTILLA_ADMIN__TOKEN_FILE", "/etc/flotilla/admin-token"), ("FLOTILLA_ADMIN__LISTEN", "127.0.0.1:7000")]);
    assert_eq!(Config::load(None, single).unwrap().admin.listen, Some("127.0.0.1:7000".parse().unwrap()));
    let clustered = env(&[
        ("FLOTILLA_CLUSTER__PEERS", "1=n1:7000"),
        ("FLOTILLA_CLUSTER__SECRET_FILE", "/s"),
        ("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT", "true"),
        ("FLOTILLA_ADMIN__LISTEN", "127.0.0.1:7000"),
    ]);
    let err = Config::load(None, clustered).unwrap_err().to_string();
    assert!(err.contains("remove admin.listen"), "{err}");
}

#[test]
fn sumdb_tables() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c.sumdb.len(), 1);
    assert_eq!((c.sumdb[0].name.as_str(), c.sumdb[0].url.as_str()), ("sum.golang.org", "https://sum.golang.org"));
    assert_eq!(c.sumdb[0].key.as_str(), gateway::SUM_GOLANG_ORG.1);
    assert!(Config::load(None, env(&[("FLOTILLA_SUMDB", "off")])).unwrap().sumdb.is_empty());
    assert!(Config::load(None, env(&[("FLOTILLA_SUMDB", "on")])).unwrap_err().to_string().contains("[[sumdb]]"));

    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| {
        let path = dir.path().join("f.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), env(&[]))
    };
    let key = gateway::SUM_GOLANG_ORG.1;
    let c = write(&format!("[[sumdb]]\nname = \"sum.golang.org\"\nkey = \"{key}\"\nurl = \"http://127.0.0.1:9\"\n")).unwrap();
    assert_eq!(c.sumdb[0].url, "http://127.0.0.1:9");
    assert!(write("sumdb = []\n").unwrap().sumdb.is_empty());
    let err = write(&format!("[[sumdb]]\nname = \"other\"\nkey = \"{key}\"\nurl = \"http://x\"\n")).unwrap_err().to_string();
    assert!(err.contains("belong together"), "{err}");
    let err = write("[[sumdb]]\nname = \"x\"\nkey = \"x+00000000+AAAA\"\nurl = \"http://x\"\n").unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    let err =
        write(&format!("[[sumdb]]\nname = \"sum.golang.org\"\nkey = \"{key}\"\nurl = \"http://x\"\nproxy = 1\n")).unwrap_err().to_string();
    assert!(err.contains("proxy"), "{err}");
}

#[test]
fn secret_files_readable_by_others_are_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "0123456789abcdef0123").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_secret_file(&path, "cluster.secret_file").unwrap_err().to_string();
    assert!(err.contains(&format!("chmod 600 {}", path.display())), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_secret_file(&path, "cluster.secret_file").unwrap(), "0123456789abcdef0123");
}

#[test]
fn shipped_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/flotilla.toml");
    let c = Config::load(Some(&path), env(&[])).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/flotilla"));
    for i in 1..=3 {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../deploy/cluster/n{i}.toml"));
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.node_id, i);
        assert_eq!(c.cluster.peer_map().unwrap().len(), 3);
    }
}

#[test]
fn shutdown_grace_defaults_to_ten_seconds_and_must_be_positive() {
    assert_eq!(Config::load(None, env(&[])).unwrap().shutdown_grace, Duration::from_secs(10));
    let c = Config::load(None, env(&[("FLOTILLA_SHUTDOWN_GRACE", "30s")])).unwrap();
    assert_eq!(c.shutdown_grace, Duration::from_secs(30));
    let err = Config::load(None, env(&[("FLOTILLA_SHUTDOWN_GRACE", "0s")])).unwrap_err().to_string();
    assert!(err.contains("shutdown_grace must be more than 0"), "{err}");
}
