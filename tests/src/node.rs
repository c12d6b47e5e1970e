//! A `flotilla serve` process with its own data directory and port, which a
//! test can stop (SIGTERM), kill (SIGKILL) and restart on the same port and
//! data directory. Its stdout and stderr go to one log file per node.

use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::http::{self, Response};
use crate::wait::wait_until;

/// How long a node may take to answer `/healthz` after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before the harness gives up.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What to start a node with.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// GOPROXY-syntax upstream chain.
    pub upstream: String,
    /// Extra environment, e.g. `FLOTILLA_CACHE__LIST_TTL=1s`.
    pub env: Vec<(String, String)>,
    /// `FLOTILLA_LOG`.
    pub log_level: String,
    /// A TOML config file's content, passed with `--config`.
    pub config: Option<String>,
}

impl NodeOptions {
    pub fn new(upstream: impl Into<String>) -> Self {
        // The tests bring no checksum database unless they start one
        // (`sumdb.rs`), and sum.golang.org is out of reach: none by default.
        let env = vec![("FLOTILLA_SUMDB".to_owned(), "off".to_owned())];
        NodeOptions { upstream: upstream.into(), env, log_level: "debug".to_owned(), config: None }
    }

    /// Starts the node with this config file content (e.g. `[[sumdb]]`
    /// tables), and without the default `FLOTILLA_SUMDB=off`.
    pub fn config(mut self, toml: &str) -> Self {
        self.env.retain(|(k, _)| k != "FLOTILLA_SUMDB");
        self.config = Some(toml.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_owned();
        self
    }
}

/// A running (or stopped) node. Dropping it kills the process.
pub struct Node {
    opts: NodeOptions,
    addr: SocketAddr,
    root: TempDir,
    child: Option<Child>,
}

/// The `flotilla` binary: `$FLOTILLA_BIN`, else next to the directory that
/// holds this test executable (`target/debug/flotilla`).
pub fn binary() -> PathBuf {
    workspace_binary("flotilla", "FLOTILLA_BIN")
}

/// The `flotillactl` binary: `$FLOTILLACTL_BIN`, else beside `flotilla`.
pub fn ctl_binary() -> PathBuf {
    workspace_binary("flotillactl", "FLOTILLACTL_BIN")
}

fn workspace_binary(name: &str, var: &str) -> PathBuf {
    let path = match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("path of the test executable");
            exe.parent().and_then(Path::parent).map(|dir| dir.join(name)).expect("test executable has a parent directory")
        }
    };
    assert!(
        path.is_file(),
        "{name} binary not found at {}: build it with `cargo build --bins` (same target dir), or set {var}",
        path.display()
    );
    path
}

/// A port on 127.0.0.1 that was free a moment ago, never the same one
/// twice in one test process (the kernel may hand a just-released port out
/// again, and two members of one cluster given the same port made one of
/// them fail to start).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        if GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(port) {
            return port;
        }
    }
}

impl Node {
    /// Spawns a node and waits until `/healthz` answers 200.
    pub fn start(opts: NodeOptions) -> Node {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Node::start_on(opts, addr)
    }

    /// Like [`Node::start`], but the gateway listens on `addr`, chosen by the
    /// caller (cluster nodes must know each other's addresses before they
    /// start).
    pub fn start_on(opts: NodeOptions, addr: SocketAddr) -> Node {
        let root = tempfile::Builder::new().prefix("flotilla-node-").tempdir().expect("create node temp dir");
        std::fs::create_dir_all(root.path().join("data")).expect("create data dir");
        let mut node = Node { opts, addr, root, child: None };
        node.spawn();
        node
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("node.log")
    }

    /// Where the blob with this sha256 lives: `blobs/<aa>/<bb>/<sha256>`.
    pub fn blob_path(&self, sha256_hex: &str) -> PathBuf {
        self.data_dir().join("blobs").join(&sha256_hex[0..2]).join(&sha256_hex[2..4]).join(sha256_hex)
    }

    /// Where an unfinished replication transfer of this blob lives:
    /// `partial/<sha256>`.
    pub fn partial_path(&self, sha256_hex: &str) -> PathBuf {
        self.data_dir().join("partial").join(sha256_hex)
    }

    /// Everything the process wrote so far, over all restarts.
    pub fn logs(&self) -> String {
        std::fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let logs = self.logs();
        let all: Vec<&str> = logs.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the log contains `needle`; panics with the log tail if not.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        if !wait_until(timeout, || self.logs().contains(needle)) {
            panic!("node log has no {needle:?} after {timeout:?}; log tail:\n{}", self.log_tail(40));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `GET path` sent verbatim; panics (with the log tail) on a transport
    /// error.
    pub fn get(&self, path: &str) -> Response {
        self.try_get(path).unwrap_or_else(|e| panic!("GET {path} on {}: {e}; log tail:\n{}", self.url(), self.log_tail(30)))
    }

    /// `GET path`, returning transport errors.
    pub fn try_get(&self, path: &str) -> std::io::Result<Response> {
        http::get(self.addr, path)
    }

    /// Sends `sig` to the process while it runs (no-op otherwise).
    pub fn send_signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            signal(child, sig);
        }
    }

    /// SIGSTOP: the process freezes (no timers, no sockets served) but keeps
    /// its state; [`Node::resume`] continues it.
    pub fn pause(&self) {
        self.send_signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&self) {
        self.send_signal(libc::SIGCONT);
    }

    /// SIGKILL and reap: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the exit; panics if it takes longer than
    /// 20 s (the process is then killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal(&child, libc::SIGTERM);
        let mut status = None;
        wait_until(STOP_TIMEOUT, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
            panic!("node did not stop within {STOP_TIMEOUT:?} of SIGTERM; log tail:\n{}", self.log_tail(40));
        }
        status
    }

    /// Starts the process again with the same port, data dir and options
    /// (stopping it first with SIGTERM if it still runs).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Changes the options used by the next [`Node::restart`].
    pub fn options_mut(&mut self) -> &mut NodeOptions {
        &mut self.opts
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open node log");
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--upstream")
            .arg(&self.opts.upstream)
            .env("FLOTILLA_LOG", &self.opts.log_level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(clone(&log))
            .stderr(log);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLOTILLA_") && key != "FLOTILLA_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(text) = &self.opts.config {
            let path = self.root.path().join("flotilla.toml");
            std::fs::write(&path, text).expect("write node config file");
            cmd.arg("--config").arg(path);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {}: {e}", binary().display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let addr = self.addr;
        let mut exited = None;
        let child = self.child.as_mut().expect("node was just spawned");
        let ready = wait_until(START_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            http::get_with_timeout(addr, "/healthz", Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
        });
        if let Some(status) = exited {
            self.child = None;
            panic!("node exited during startup ({status}); log tail:\n{}", self.log_tail(40));
        }
        if !ready {
            panic!("node not healthy on {addr} after {START_TIMEOUT:?}; log tail:\n{}", self.log_tail(40));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- log tail of node {} ---\n{}", self.url(), self.log_tail(60));
        }
    }
}

fn clone(file: &File) -> File {
    file.try_clone().expect("duplicate node log handle")
}

#[allow(unsafe_code)] // kill(2) through libc; see the SAFETY comment
fn signal(child: &Child, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else { return };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
    // own child, not yet reaped, so it cannot have been reused.
    unsafe {
        libc::kill(pid, sig);
    }
}
