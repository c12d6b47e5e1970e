//! A three-node (or n-node) Flotilla cluster of real processes in front of
//! one fake origin: ports picked up front (every node must know every
//! cluster address, and its own gateway URL, before it starts), a shared
//! secret file, each node's `/api/v1/status` parsed, and waits for the
//! cluster to agree on one primary.
//!
//! Status reads use short timeouts, so a frozen (SIGSTOPped) node cannot
//! hang a test; failures carry every node's status and log tail.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

use crate::http::{self, Response};
use crate::node::{binary, free_port, Node, NodeOptions};
use crate::wait::wait_until;

/// Timeout of one status or readiness read.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The `cluster` object of `/api/v1/status`, plus the top-level `node_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub node_id: u64,
    pub role: String,
    pub term: u64,
    pub primary_id: Option<u64>,
    pub primary_url: Option<String>,
    pub acting_primary: bool,
    pub last_applied: Option<u64>,
    pub committed: Option<u64>,
}

#[derive(Deserialize)]
struct RawStatus {
    node_id: u64,
    cluster: RawCluster,
}

#[derive(Deserialize)]
struct RawCluster {
    role: String,
    term: u64,
    primary_id: Option<u64>,
    primary_url: Option<String>,
    #[serde(default)]
    acting_primary: bool,
    last_applied: Option<u64>,
    committed: Option<u64>,
}

impl Status {
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }

    /// Parses a `/api/v1/status` body.
    pub fn parse(body: &[u8]) -> Result<Status, String> {
        let raw: RawStatus = serde_json::from_slice(body)
            .map_err(|e| format!("status is not the expected JSON ({e}): {}", String::from_utf8_lossy(body)))?;
        let c = raw.cluster;
        Ok(Status {
            node_id: raw.node_id,
            role: c.role,
            term: c.term,
            primary_id: c.primary_id,
            primary_url: c.primary_url,
            acting_primary: c.acting_primary,
            last_applied: c.last_applied,
            committed: c.committed,
        })
    }
}

/// Where one member listens.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    pub id: u64,
    pub gateway: SocketAddr,
    pub cluster: SocketAddr,
}

impl Member {
    pub fn url(&self) -> String {
        format!("http://{}", self.gateway)
    }
}

/// Addresses and secret of a cluster, before or without its processes.
#[derive(Debug, Clone)]
pub struct Layout {
    pub members: Vec<Member>,
    pub secret_file: PathBuf,
    /// The output folder of `flotilla certs` when the cluster port uses
    /// mutual TLS; `None`: plaintext (`cluster.insecure_plaintext`).
    pub tls: Option<PathBuf>,
}

impl Layout {
    /// `n` members with fresh ports, sharing `secret_file`.
    pub fn new(n: u64, secret_file: PathBuf) -> Layout {
        let members = (1..=n)
            .map(|id| Member {
                id,
                gateway: SocketAddr::from(([127, 0, 0, 1], free_port())),
                cluster: SocketAddr::from(([127, 0, 0, 1], free_port())),
            })
            .collect();
        Layout { members, secret_file, tls: None }
    }

    pub fn member(&self, id: u64) -> Member {
        *self.members.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("no member {id} in the layout"))
    }

    /// `1=127.0.0.1:P1,2=127.0.0.1:P2,...`
    pub fn peers(&self) -> String {
        self.members.iter().map(|m| format!("{}={}", m.id, m.cluster)).collect::<Vec<_>>().join(",")
    }

    /// The environment of member `id` in cluster mode.
    pub fn env(&self, id: u64) -> Vec<(String, String)> {
        let m = self.member(id);
        let transport: Vec<(String, String)> = match &self.tls {
            Some(dir) => vec![
                ("FLOTILLA_CLUSTER__TLS_CA_FILE".into(), dir.join("ca.crt").display().to_string()),
                ("FLOTILLA_CLUSTER__TLS_CERT_FILE".into(), dir.join(format!("node-{id}.crt")).display().to_string()),
                ("FLOTILLA_CLUSTER__TLS_KEY_FILE".into(), dir.join(format!("node-{id}.key")).display().to_string()),
            ],
            None => vec![("FLOTILLA_CLUSTER__INSECURE_PLAINTEXT".into(), "true".into())],
        };
        let mut env: Vec<(String, String)> = vec![
            ("FLOTILLA_NODE_ID".into(), id.to_string()),
            ("FLOTILLA_CLUSTER__LISTEN".into(), m.cluster.to_string()),
            ("FLOTILLA_CLUSTER__PEERS".into(), self.peers()),
            ("FLOTILLA_CLUSTER__SECRET_FILE".into(), self.secret_file.display().to_string()),
            ("FLOTILLA_GATEWAY__ADVERTISE_URL".into(), m.url()),
            ("FLOTILLA_GATEWAY__LEADER_WAIT".into(), "5s".into()),
            ("FLOTILLA_RAFT__HEARTBEAT".into(), "100ms".into()),
            ("FLOTILLA_RAFT__ELECTION_TIMEOUT_MIN".into(), "400ms".into()),
            ("FLOTILLA_RAFT__ELECTION_TIMEOUT_MAX".into(), "800ms".into()),
        ];
        env.extend(transport);
        env
    }

    /// Node options of member `id`: cluster env, then `extra` (later wins).
    pub fn options(&self, id: u64, upstream: &str, extra: &[(&str, &str)]) -> NodeOptions {
        let mut opts = NodeOptions::new(upstream).log_level("info");
        for (k, v) in self.env(id) {
            opts = opts.env(&k, &v);
        }
        for (k, v) in extra {
            opts = opts.env(k, v);
        }
        opts
    }
}

/// Writes a secret file `name` in `dir` (mode 0600, as the node demands)
/// and returns its path.
pub fn write_secret(dir: &Path, name: &str, secret: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).expect("write cluster secret file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600 the secret file");
    path
}

/// Runs the real `flotilla certs --out dir --ids …` and panics unless it works.
pub fn make_certs(dir: &Path, ids: &[u64]) {
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    let out =
        Command::new(binary()).arg("certs").arg("--out").arg(dir).arg("--ids").arg(ids.join(",")).output().expect("run flotilla certs");
    assert!(
        out.status.success(),
        "flotilla certs failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Running cluster nodes, by id. Dropping it kills them.
pub struct Cluster {
    pub layout: Layout,
    nodes: BTreeMap<u64, Node>,
    upstream: String,
    _dir: TempDir,
}

/// Options for [`Cluster::start`].
pub struct ClusterOptions<'a> {
    pub size: u64,
    /// Start order (each waits for `/healthz` of the previous one only).
    pub order: Vec<u64>,
    /// Extra environment for every node.
    pub env: Vec<(&'a str, &'a str)>,
    /// Config file content for every node (see [`NodeOptions::config`]).
    pub config: Option<String>,
    /// Mutual TLS on the cluster port with certificates from `flotilla
    /// certs` (in `<cluster dir>/certs`); plaintext otherwise.
    pub tls: bool,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        ClusterOptions { size: 3, order: vec![1, 2, 3], env: Vec::new(), config: None, tls: false }
    }
}

impl Cluster {
    /// Starts every member in `opts.order` in front of `upstream`. Does not
    /// wait for an election: see [`Cluster::wait_converged`].
    pub fn start(upstream: &str, opts: ClusterOptions<'_>) -> Cluster {
        let dir = tempfile::Builder::new().prefix("flotilla-cluster-").tempdir().expect("create cluster temp dir");
        let secret = write_secret(dir.path(), "cluster.secret", "e2e-cluster-secret-0123456789abcdef");
        let mut layout = Layout::new(opts.size, secret);
        if opts.tls {
            let certs = dir.path().join("certs");
            make_certs(&certs, &(1..=opts.size).collect::<Vec<_>>());
            layout.tls = Some(certs);
        }
        let mut cluster = Cluster { layout, nodes: BTreeMap::new(), upstream: upstream.to_owned(), _dir: dir };
        for id in opts.order {
            let mut options = cluster.layout.options(id, upstream, &opts.env);
            if let Some(text) = &opts.config {
                options = options.config(text);
            }
            let node = Node::start_on(options, cluster.layout.member(id).gateway);
            cluster.nodes.insert(id, node);
        }
        cluster
    }

    /// A directory that lives as long as the cluster (for extra secret files).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.get(&id).unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn url(&self, id: u64) -> String {
        self.layout.member(id).url()
    }

    pub fn addr(&self, id: u64) -> SocketAddr {
        self.layout.member(id).gateway
    }

    /// `/api/v1/status` of node `id`, or why it could not be read.
    pub fn status(&self, id: u64) -> Result<Status, String> {
        probe_status(self.addr(id))
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self, id: u64) -> bool {
        http::get_with_timeout(self.addr(id), "/readyz", PROBE_TIMEOUT).is_ok_and(|r| r.status == 200)
    }

    /// `GET path` on node `id` without following redirects.
    pub fn get(&self, id: u64, path: &str) -> Response {
        self.try_get(id, path).unwrap_or_else(|e| panic!("GET {path} on node {id}: {e}\n{}", self.report()))
    }

    pub fn try_get(&self, id: u64, path: &str) -> std::io::Result<Response> {
        http::get_with_timeout(self.addr(id), path, Duration::from_secs(60))
    }

    /// Waits until, among `ids`, exactly one node reports role `leader`,
    /// every one answers `/readyz` 200 and names that node as primary with
    /// its advertised URL. Returns the primary's id and the statuses.
    pub fn wait_converged(&self, ids: &[u64], timeout: Duration) -> (u64, BTreeMap<u64, Status>) {
        let mut last = BTreeMap::new();
        let mut found = None;
        let ok = wait_until(timeout, || {
            last = ids.iter().map(|&id| (id, self.status(id))).collect::<BTreeMap<_, _>>();
            let statuses: BTreeMap<u64, Status> = last.iter().filter_map(|(id, s)| s.as_ref().ok().map(|s| (*id, s.clone()))).collect();
            if statuses.len() != ids.len() {
                return false;
            }
            let leaders: Vec<u64> = statuses.values().filter(|s| s.is_leader()).map(|s| s.node_id).collect();
            let [leader] = leaders[..] else { return false };
            let url = self.url(leader);
            let agree = statuses.values().all(|s| s.primary_id == Some(leader) && s.primary_url.as_deref() == Some(url.as_str()));
            if agree && statuses[&leader].acting_primary && ids.iter().all(|&id| self.ready(id)) {
                found = Some((leader, statuses));
                return true;
            }
            false
        });
        match (ok, found) {
            (true, Some(found)) => found,
            _ => panic!("nodes {ids:?} did not agree on one ready primary within {timeout:?}; last statuses: {last:#?}\n{}", self.report()),
        }
    }

    /// The members other than `id`.
    pub fn others(&self, id: u64) -> Vec<u64> {
        self.ids().into_iter().filter(|&n| n != id).collect()
    }

    /// Statuses and log tails of every node, for failure messages.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (id, node) in &self.nodes {
            let status = match self.status(*id) {
                Ok(s) => format!("{s:?}"),
                Err(e) => e,
            };
            out.push_str(&format!("--- node {id} ({}) status: {status}\n--- node {id} log tail:\n{}\n", node.url(), node.log_tail(40)));
        }
        out
    }

    /// Panics with `what` and the cluster report unless `cond` holds in time.
    pub fn wait_for(&self, what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
        if !wait_until(timeout, cond) {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", self.report());
        }
    }
}

/// `/api/v1/status` at `addr` with a short timeout.
pub fn probe_status(addr: SocketAddr) -> Result<Status, String> {
    let r = http::get_with_timeout(addr, "/api/v1/status", PROBE_TIMEOUT).map_err(|e| format!("status unreachable: {e}"))?;
    if r.status != 200 {
        return Err(format!("status answered {}", r.summary()));
    }
    Status::parse(&r.body)
}

/// One run of `flotilla serve` that is expected to exit by itself (e.g. a
/// refused start); killed after `timeout` if it does not.
pub struct OneShot {
    /// `None`: it was still running at the deadline and was killed.
    pub status: Option<ExitStatus>,
    pub output: String,
}

/// Runs `flotilla serve --listen <listen> --data-dir <data_dir> --upstream
/// <upstream>` with `env` (and nothing `FLOTILLA_*` inherited) until it exits
/// or `timeout` passes.
pub fn run_serve_once(listen: SocketAddr, data_dir: &Path, upstream: &str, env: &[(String, String)], timeout: Duration) -> OneShot {
    let out_dir = tempfile::Builder::new().prefix("flotilla-oneshot-").tempdir().expect("create temp dir");
    let log_path = out_dir.path().join("out.log");
    let log = std::fs::File::create(&log_path).expect("create output file");
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--upstream")
        .arg(upstream)
        .env("FLOTILLA_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("duplicate handle"))
        .stderr(log);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLOTILLA_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {}: {e}", binary().display()));
    let deadline = Instant::now() + timeout;
    let mut status = None;
    wait_until(deadline.saturating_duration_since(Instant::now()), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let output = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
    OneShot { status, output }
}

/// Every file under `dir` with its size, relative to `dir`.
pub fn file_sizes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if let Ok(meta) = entry.metadata() {
                out.insert(path.strip_prefix(base).unwrap_or(&path).to_path_buf(), meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What a client that follows redirects (reqwest's default policy) got.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    /// The URL that finally answered.
    pub url: String,
    pub body: Vec<u8>,
    pub retry_after: Option<String>,
}

impl Fetched {
    pub fn summary(&self) -> String {
        let text: String = String::from_utf8_lossy(&self.body).chars().take(300).collect();
        format!("{} from {} {:?}", self.status, self.url, text)
    }
}

/// `GET url` following redirects, as an ordinary HTTP client does.
pub fn get_following(url: &str) -> Result<Fetched, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let final_url = response.url().to_string();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(|e| format!("GET {url}: body: {e}"))?.to_vec();
        Ok(Fetched { status, url: final_url, body, retry_after })
    })
}
