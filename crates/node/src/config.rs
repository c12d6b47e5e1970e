//! Configuration: defaults, then a TOML file, then `FLOTILLA_*` environment
//! variables, then command-line flags — each layer overrides the one before.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub gateway: GatewaySection,
    pub upstream: upstream::Config,
    pub cache: CacheSection,
    pub cluster: ClusterSection,
    pub raft: raft::RaftSettings,
    pub replication: replicator::ReplicationConfig,
    pub admin: AdminSection,
    /// `[[sumdb]]` tables: checksum databases proxied for the go command;
    /// the first verifies every fetched version. Default: sum.golang.org.
    /// `sumdb = []` (or `FLOTILLA_SUMDB=off`) turns both off.
    pub sumdb: Vec<gateway::SumdbConfig>,
    /// How long a shutdown (SIGTERM/SIGINT) may take in all: requests in
    /// flight finish, background workers stop, raft stops. Past it the
    /// process exits with status 1.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `[admin]`: the admin API (`flotilla.v1.Admin`, used by `flotillactl`) on
/// the cluster port, or on `listen` for a single node.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// File of `name:token` lines (or one bare token); without it the admin API refuses every call.
    pub token_file: Option<PathBuf>,
    /// Where a single node serves the admin API (a cluster node uses its cluster port).
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    pub listen: SocketAddr,
    /// The URL clients use to reach this node's gateway (where other nodes redirect to).
    pub advertise_url: Option<String>,
    /// What a follower does with a miss: `redirect` (307 to the primary) or
    /// `forward` (fetch from the primary and relay it).
    pub mode: gateway::Mode,
    /// How long a request waits for a primary during an election before `503`.
    #[serde(with = "humantime_serde")]
    pub leader_wait: Duration,
    /// Longest wait for a request's headers, and for the next request on a
    /// kept-alive connection (slowloris, idle connections).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Client connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// Zip downloads from upstream at once; more misses wait their turn.
    pub max_fills: usize,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// Cluster gRPC listen address (raft, later blobs and admin).
    pub listen: Option<SocketAddr>,
    /// Every voter as `id=host:port`, identical on all nodes. Empty: single node.
    #[serde(deserialize_with = "peers_list")]
    pub peers: Vec<String>,
    /// File holding the shared cluster secret (required with peers).
    pub secret_file: Option<PathBuf>,
    /// Mutual TLS on the cluster port: the cluster CA (PEM), this node's
    /// certificate naming `node-<node_id>` and its key (`flotilla certs`
    /// makes them). Required with peers unless `insecure_plaintext`.
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The cluster's id (what `data_dir/cluster-id` records). Unset: derived
    /// from the secret. Set it (same on every node) to rotate the secret
    /// without wiping data: the id then no longer depends on the secret.
    pub id: Option<String>,
    /// Serve and call the cluster port without TLS (the secret travels in
    /// clear): only for a network nobody else can reach.
    pub insecure_plaintext: bool,
    /// Join a running cluster instead of forming one: the node does not
    /// bootstrap a membership from `peers` and waits until the primary adds
    /// it (`flotillactl members add`). Its `peers` lists the members it may
    /// reach first and itself.
    pub join: bool,
}

/// `peers` as a TOML array or, from the environment, one comma-separated string.
fn peers_list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Peers {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Peers::deserialize(d)? {
        Peers::One(s) => s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect(),
        Peers::Many(v) => v,
    })
}

impl ClusterSection {
    /// The TLS files, `None` with `insecure_plaintext`; an error naming the
    /// fix when the two are mixed or files are missing.
    pub fn tls_files(&self) -> Result<Option<proto::tls::TlsFiles>> {
        let (ca, cert, key) = (&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file);
        if self.insecure_plaintext {
            if ca.is_some() || cert.is_some() || key.is_some() {
                bail!("cluster.insecure_plaintext = true and cluster.tls_* files are both set: remove one (TLS is the safe choice)");
            }
            return Ok(None);
        }
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => {
                Ok(Some(proto::tls::TlsFiles { ca_file: ca.clone(), cert_file: cert.clone(), key_file: key.clone() }))
            }
            (None, None, None) => bail!(
                "the cluster port needs TLS: set cluster.tls_ca_file, cluster.tls_cert_file and cluster.tls_key_file \
                 (`flotilla certs --nodes N --out DIR` makes a CA and node certificates), or set \
                 cluster.insecure_plaintext = true on a network nobody else can reach"
            ),
            _ => bail!("set all three of cluster.tls_ca_file, cluster.tls_cert_file and cluster.tls_key_file (or none, with cluster.insecure_plaintext = true)"),
        }
    }

    /// `peers` parsed into id → `host:port`, with an error naming the bad entry.
    pub fn peer_map(&self) -> Result<BTreeMap<u64, String>> {
        let mut out = BTreeMap::new();
        for entry in &self.peers {
            let Some((id, addr)) = entry.split_once('=') else {
                bail!("cluster.peers entry {entry:?} must look like \"1=host:7000\"");
            };
            let id: u64 = id.trim().parse().with_context(|| format!("cluster.peers entry {entry:?}: {id:?} is not a node id"))?;
            if id == 0 || addr.trim().is_empty() || !addr.contains(':') {
                bail!("cluster.peers entry {entry:?} must look like \"1=host:7000\" (id ≥ 1, address with port)");
            }
            if out.insert(id, addr.trim().to_string()).is_some() {
                bail!("cluster.peers names node {id} twice");
            }
        }
        Ok(out)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    #[serde(with = "humantime_serde")]
    pub list_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Memory for keeping hot, verified zips of up to 1 MiB (0 turns it off).
    #[serde(deserialize_with = "replicator::byte_size")]
    pub memory: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            data_dir: PathBuf::from("./flotilla-data"),
            gateway: GatewaySection::default(),
            upstream: upstream::Config::default(),
            cache: CacheSection::default(),
            cluster: ClusterSection::default(),
            raft: raft::RaftSettings::default(),
            replication: replicator::ReplicationConfig::default(),
            admin: AdminSection::default(),
            sumdb: vec![gateway::SumdbConfig::sum_golang_org()],
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            advertise_url: None,
            mode: gateway::Mode::Redirect,
            leader_wait: Duration::from_secs(5),
            header_timeout: Duration::from_secs(15),
            max_connections: 4096,
            max_fills: 16,
        }
    }
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection { list_ttl: Duration::from_secs(60), negative_ttl: Duration::from_secs(600), memory: 64 << 20 }
    }
}

/// Variables that belong to other tools (flotillactl) or to logging, not to
/// the configuration; they share the prefix and must not be rejected.
const NOT_CONFIG: [&str; 4] = ["FLOTILLA_LOG", "FLOTILLA_CLUSTER", "FLOTILLA_ADMIN_TOKEN", "FLOTILLA_BIN"];

impl Config {
    /// Loads the configuration from an optional file and the environment.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "environment".into());
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration ({source}): {}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.node_id == 0 {
            bail!("node_id must be 1 or more");
        }
        if self.gateway.header_timeout < Duration::from_millis(100) {
            bail!("gateway.header_timeout must be at least 100ms (e.g. \"15s\")");
        }
        if self.gateway.max_fills == 0 {
            bail!("gateway.max_fills must be at least 1 (e.g. 16)");
        }
        if self.gateway.max_connections == 0 {
            bail!("gateway.max_connections must be at least 1 (e.g. 4096)");
        }
        if self.shutdown_grace.is_zero() {
            bail!("shutdown_grace must be more than 0 (e.g. \"10s\")");
        }
        if self.cache.list_ttl.is_zero() {
            bail!("cache.list_ttl must be more than 0 (e.g. \"60s\")");
        }
        if let Some(url) = &self.gateway.advertise_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("gateway.advertise_url {url:?} must be a URL such as \"http://n1.example:8080\"");
            }
        }
        for (i, db) in self.sumdb.iter().enumerate() {
            db.validate().map_err(anyhow::Error::msg)?;
            if self.sumdb[..i].iter().any(|d| d.name == db.name) {
                bail!("sumdb {:?} is configured twice", db.name);
            }
        }
        let peers = self.cluster.peer_map()?;
        self.replication.validate(peers.len().max(1))?;
        if !peers.is_empty() {
            if !peers.contains_key(&self.node_id) {
                bail!("node_id {} is not in cluster.peers ({})", self.node_id, self.cluster.peers.join(", "));
            }
            if self.cluster.secret_file.is_none() {
                bail!("cluster.secret_file is required when cluster.peers is set (the same secret on every node)");
            }
            self.cluster.tls_files()?;
            if let Some(listen) = self.admin.listen {
                bail!("admin.listen ({listen}) is for a single node: a cluster node serves the admin API on its cluster port; remove admin.listen");
            }
        } else if self.admin.token_file.is_some() && self.admin.listen.is_none() {
            bail!("admin.token_file is set but admin.listen is not: a single node serves the admin API on admin.listen (e.g. \"127.0.0.1:7000\")");
        }
        Ok(())
    }
}

/// Refuses a file holding a secret that group or others may read.
pub fn check_private_file(path: &Path, setting: &str) -> Result<()> {
    proto::tls::check_private(path, setting).map_err(anyhow::Error::msg)
}

/// Reads a secret from the file a setting (`setting`) names: not readable
/// by group or others, trimmed, at least 16 printable characters.
pub fn read_secret_file(path: &Path, setting: &str) -> Result<String> {
    check_private_file(path, setting)?;
    let secret = std::fs::read_to_string(path).with_context(|| format!("cannot read {setting} {}", path.display()))?.trim().to_string();
    if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("{setting} {} must hold at least 16 printable characters (e.g. `openssl rand -hex 32`)", path.display());
    }
    Ok(secret)
}

/// `FLOTILLA_NODE_ID`, `FLOTILLA_DATA_DIR` and `FLOTILLA_<SECTION>__<KEY>`.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<()> {
    let vars: BTreeMap<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("FLOTILLA_")).collect();
    for (name, value) in vars {
        if NOT_CONFIG.contains(&name.as_str()) {
            continue;
        }
        let rest = &name["FLOTILLA_".len()..];
        let value = env_value(&value);
        match rest.split_once("__") {
            None if ["NODE_ID", "DATA_DIR", "SHUTDOWN_GRACE"].contains(&rest) => {
                table.insert(rest.to_ascii_lowercase(), value);
            }
            None if rest == "SUMDB" && value.as_str() == Some("") => continue,
            None if rest == "SUMDB" => {
                if value.as_str() != Some("off") {
                    bail!("{name} only takes \"off\" (no checksum database); configure databases with [[sumdb]] tables in the config file");
                }
                table.insert("sumdb".into(), toml::Value::Array(Vec::new()));
            }
            None => continue,
            Some((section, key)) => {
                let section = section.to_ascii_lowercase();
                let entry = table.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(section_table) = entry.as_table_mut() else {
                    bail!("environment variable {name}: [{section}] is not a section");
                };
                section_table.insert(key.to_ascii_lowercase(), value);
            }
        }
    }
    Ok(())
}

/// Environment values are strings; numbers and booleans are typed so that
/// `FLOTILLA_NODE_ID=2` works like `node_id = 2`.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
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
    fn shutdown_grace_defaults_to_ten_seconds_and_must_be_positive() {
        assert_eq!(Config::load(None, env(&[])).unwrap().shutdown_grace, Duration::from_secs(10));
        let c = Config::load(None, env(&[("FLOTILLA_SHUTDOWN_GRACE", "30s")])).unwrap();
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        let err = Config::load(None, env(&[("FLOTILLA_SHUTDOWN_GRACE", "0s")])).unwrap_err().to_string();
        assert!(err.contains("shutdown_grace must be more than 0"), "{err}");
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
        let mixed =
            [cluster[0], cluster[1], ("FLOTILLA_CLUSTER__TLS_CA_FILE", "/ca.crt"), ("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT", "true")];
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
        let err = write(&format!("[[sumdb]]\nname = \"sum.golang.org\"\nkey = \"{key}\"\nurl = \"http://x\"\nproxy = 1\n"))
            .unwrap_err()
            .to_string();
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
}
