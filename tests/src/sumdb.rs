//! The checksum database the tests run: `tests/sumdb-server`, a small Go
//! program on Go's own `golang.org/x/mod/sumdb` server, built once per test
//! process with the real go command, offline, in GOPATH mode against
//! Debian's `golang-golang-x-mod-dev` (`/usr/share/gocode`). It holds
//! `filler` made-up records (so the log has full tiles) and then the hashes
//! of every version of a [`ModuleSet`], signs with its own key, counts
//! requests per path and can be restarted on the same port and key, also
//! grown (records appended) or as a fork of itself (its first record
//! changed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use gomod::{ModulePath, Version, ZipLimits};
use tempfile::TempDir;

use crate::gocmd::shared_gocache;
use crate::http;
use crate::modules::ModuleSet;

/// Where Debian puts the Go sources of golang.org/x/mod.
const GOCODE: &str = "/usr/share/gocode";

/// A running test checksum database. Dropping it kills the process.
pub struct SumdbServer {
    dir: TempDir,
    addr: SocketAddr,
    vkey: String,
    filler: usize,
    child: Option<Child>,
}

/// The built server binary: built on first use into the directory beside
/// the shared GOCACHE, named by a hash of its sources, and reused.
fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("sumdb-server");
        let mut sources = Vec::new();
        for name in ["main.go", "keys.go"] {
            sources.extend(std::fs::read(src.join(name)).expect("read tests/sumdb-server sources"));
        }
        let dir = shared_gocache().parent().map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        let out = dir.join(format!("flotilla-sumdb-server-{}", &crate::sha256_hex(&sources)[..16]));
        if out.is_file() {
            return out;
        }
        let building = dir.join(format!("flotilla-sumdb-server-{}.part", std::process::id()));
        assert!(
            Path::new(GOCODE).join("src/golang.org/x/mod/sumdb").is_dir(),
            "{GOCODE}/src/golang.org/x/mod/sumdb missing: apt-get install golang-golang-x-mod-dev"
        );
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&building)
            .arg(".")
            .current_dir(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", GOCODE)
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .env("GOCACHE", shared_gocache())
            .status()
            .expect("run go build for tests/sumdb-server");
        assert!(status.success(), "building tests/sumdb-server failed");
        std::fs::rename(&building, &out).expect("move the built tests/sumdb-server into place");
        out
    })
}

/// `path version h1:zip h1:mod` for every version of `modules`.
fn records(modules: &ModuleSet) -> String {
    let mut out = String::new();
    for v in modules.versions() {
        let (path, version) = (ModulePath::new(&v.path).expect("module path"), Version::new(&v.version).expect("version"));
        let zip = gomod::check_zip(std::io::Cursor::new(&v.zip), &path, &version, &ZipLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", v.spec()));
        out.push_str(&format!("{} {} {} {}\n", v.path, v.version, zip.h1, gomod::h1_go_mod(&v.go_mod)));
    }
    out
}

impl SumdbServer {
    /// Starts a database named `sumdb.test` holding `filler` made-up
    /// records, then the hashes of every version in `modules`.
    pub fn start(modules: &ModuleSet, filler: usize) -> SumdbServer {
        let dir = tempfile::Builder::new().prefix("flotilla-sumdb-").tempdir().expect("create sumdb temp dir");
        std::fs::write(dir.path().join("records"), records(modules)).expect("write sumdb records");
        let mut server = SumdbServer { dir, addr: SocketAddr::from(([127, 0, 0, 1], 0)), vkey: String::new(), filler, child: None };
        server.spawn(false, 0);
        server
    }

    fn spawn(&mut self, fork: bool, extra: usize) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open sumdb log");
        let mut child = Command::new(server_binary())
            .arg("-listen")
            .arg(self.addr.to_string())
            .arg("-keyfile")
            .arg(self.dir.path().join("key"))
            .arg("-records")
            .arg(self.dir.path().join("records"))
            .arg("-filler")
            .arg(self.filler.to_string())
            .arg(format!("-fork={fork}"))
            .arg("-extra")
            .arg(extra.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn the test checksum database");
        let stdout = child.stdout.take().expect("sumdb stdout");
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref().take(2) {
            let line = line.expect("read sumdb stdout");
            if let Some(vkey) = line.strip_prefix("vkey ") {
                self.vkey = vkey.to_owned();
            } else if let Some(addr) = line.strip_prefix("listen ") {
                self.addr = addr.parse().expect("sumdb listen address");
            }
        }
        assert!(!self.vkey.is_empty() && self.addr.port() != 0, "test checksum database did not start: {}", self.logs());
        self.child = Some(child);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// What the server logged (one line per request).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `sumdb.test`.
    pub fn name(&self) -> &str {
        "sumdb.test"
    }

    /// Its verifier key, also the `GOSUMDB` value for the go command.
    pub fn vkey(&self) -> &str {
        &self.vkey
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A node config file that proxies this database (and verifies against it).
    pub fn node_config(&self) -> String {
        format!("[[sumdb]]\nname = \"{}\"\nkey = \"{}\"\nurl = \"{}\"\n", self.name(), self.vkey, self.url())
    }

    /// Requests per path since the server (re)started.
    pub fn counts(&self) -> HashMap<String, usize> {
        let r = http::get(self.addr, "/_counts").expect("GET /_counts of the test checksum database");
        serde_json::from_slice(&r.body).expect("counts are JSON")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same key and `extra`
    /// made-up records appended (the log grew); `fork`: with its first
    /// record changed, so its tree is inconsistent with the old one.
    pub fn restart(&mut self, fork: bool, extra: usize) {
        self.stop();
        self.spawn(fork, extra);
    }
}

impl Drop for SumdbServer {
    fn drop(&mut self) {
        self.stop();
    }
}
