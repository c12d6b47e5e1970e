//! The real `go` command in an isolated workspace: its own GOPATH,
//! GOMODCACHE and HOME under a temp dir, `GOSUMDB=off` (unless a test sets
//! one), nothing inherited
//! from the user's Go environment. The build cache (GOCACHE) is shared by
//! all tests so that compiling the standard library happens once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::modules::Program;
use crate::wait::wait_until;

/// A go command that runs longer than this is killed: Go 1.19 has no
/// request timeout of its own, so a hanging proxy would hang the test.
const GO_TIMEOUT: Duration = Duration::from_secs(300);

/// Result of one go invocation.
#[derive(Debug, Clone)]
pub struct GoOutput {
    pub args: Vec<String>,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for GoOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "go {} ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            if self.success { "ok" } else { "FAILED" },
            self.stdout,
            self.stderr
        )
    }
}

/// An isolated workspace with a main module in `work_dir()`.
pub struct GoEnv {
    root: TempDir,
    proxy: String,
    sumdb: String,
}

impl GoEnv {
    /// A fresh workspace and module cache using `proxy` as GOPROXY.
    pub fn new(proxy: &str) -> GoEnv {
        let root = tempfile::Builder::new().prefix("flotilla-go-").tempdir().expect("create go temp dir");
        for dir in ["work", "gopath", "modcache", "home", "out"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("create go workspace dirs");
        }
        GoEnv { root, proxy: proxy.to_owned(), sumdb: "off".to_owned() }
    }

    /// `GOSUMDB` (`off` by default), e.g. `sumdb.test+<hash>+<key>`.
    pub fn set_sumdb(&mut self, gosumdb: &str) {
        self.sumdb = gosumdb.to_owned();
    }

    pub fn set_proxy(&mut self, proxy: &str) {
        self.proxy = proxy.to_owned();
    }

    pub fn work_dir(&self) -> PathBuf {
        self.root.path().join("work")
    }

    pub fn modcache(&self) -> PathBuf {
        self.root.path().join("modcache")
    }

    /// `go args...` in the work dir with the isolated environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("go");
        cmd.args(args)
            .current_dir(self.work_dir())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path().join("home"))
            .env("GOPATH", self.root.path().join("gopath"))
            .env("GOMODCACHE", self.modcache())
            .env("GOCACHE", shared_gocache())
            .env("GOENV", "off")
            .env("GOPROXY", &self.proxy)
            .env("GOSUMDB", &self.sumdb)
            .env("GONOSUMDB", "")
            .env("GONOPROXY", "")
            .env("GOPRIVATE", "")
            .env("GOFLAGS", "-modcacherw")
            .env("GO111MODULE", "on")
            .env("GOWORK", "off")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs go and returns what happened, success or not.
    pub fn run(&self, args: &[&str]) -> GoOutput {
        let out_dir = self.root.path().join("out");
        let (stdout_path, stderr_path) = (out_dir.join("stdout"), out_dir.join("stderr"));
        let stdout = std::fs::File::create(&stdout_path).expect("create go stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("create go stderr file");
        let mut child = self.command(args).stdout(stdout).stderr(stderr).spawn().expect("spawn go (is it on PATH?)");
        let mut status = None;
        wait_until(GO_TIMEOUT, || {
            status = child.try_wait().expect("wait for go");
            status.is_some()
        });
        let timed_out = status.is_none();
        if timed_out {
            let _ = child.kill();
            let _ = child.wait();
        }
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        let mut output = GoOutput {
            args: args.iter().map(|s| s.to_string()).collect(),
            success: status.is_some_and(|s| s.success()),
            stdout: read(&stdout_path),
            stderr: read(&stderr_path),
        };
        if timed_out {
            output.stderr.push_str(&format!("\n[harness: killed after {GO_TIMEOUT:?}]"));
        }
        output
    }

    /// Runs go and panics with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> GoOutput {
        let out = self.run(args);
        assert!(out.success, "GOPROXY={}: {out}", self.proxy);
        out
    }

    pub fn write_file(&self, name: &str, content: &str) {
        let path = self.work_dir().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create dir in go workspace");
        }
        std::fs::write(path, content).expect("write file in go workspace");
    }

    /// A work-dir file, or "" when it does not exist.
    pub fn read_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.work_dir().join(name)).unwrap_or_default()
    }

    /// Writes `go.mod` (with the program's requirements) and `main.go`.
    pub fn write_program(&self, program: &Program) {
        self.write_file("go.mod", &program.go_mod());
        self.write_file("main.go", &program.main_go());
    }

    /// Writes `main.go` of `program` and a `go.mod` without requirements.
    pub fn write_bare_program(&self, program: &Program) {
        self.write_file("go.mod", &program.bare_go_mod());
        self.write_file("main.go", &program.main_go());
    }

    /// `go mod download -x` of `path@version` specs (all of the build list
    /// when empty).
    pub fn mod_download(&self, specs: &[&str]) -> GoOutput {
        let mut args = vec!["mod", "download"];
        args.extend_from_slice(specs);
        self.ok(&args)
    }

    pub fn mod_tidy(&self) -> GoOutput {
        self.ok(&["mod", "tidy"])
    }

    /// `go get specs...`.
    pub fn get(&self, specs: &[&str]) -> GoOutput {
        let mut args = vec!["get"];
        args.extend_from_slice(specs);
        self.ok(&args)
    }

    /// `go build -o app .`, then runs `app` and returns its stdout.
    pub fn build_and_run(&self) -> String {
        let bin = self.root.path().join("out").join("app");
        let bin_str = bin.to_string_lossy().into_owned();
        self.ok(&["build", "-o", &bin_str, "."]);
        let out = Command::new(&bin).output().expect("run the built program");
        assert!(out.status.success(), "built program failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Versions `go list -m -versions module` shows (retracted ones hidden).
    pub fn list_versions(&self, module: &str) -> Vec<String> {
        let out = self.ok(&["list", "-m", "-versions", module]);
        out.stdout.split_whitespace().skip(1).map(str::to_owned).collect()
    }

    /// The version of `module` in the main module's build list.
    pub fn module_version(&self, module: &str) -> String {
        self.ok(&["list", "-m", "-f", "{{.Version}}", module]).stdout.trim().to_owned()
    }

    /// `go mod verify`.
    pub fn verify(&self) -> GoOutput {
        self.ok(&["mod", "verify"])
    }

    pub fn go_sum(&self) -> String {
        self.read_file("go.sum")
    }
}

/// The GOCACHE shared by every test: `target/tmp/go-cache` next to the
/// test executable's `target/<profile>/deps`, else under the system temp dir.
pub fn shared_gocache() -> PathBuf {
    let beside_target =
        std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("tmp").join("flotilla-e2e-go-cache")));
    let dir = beside_target.unwrap_or_else(|| std::env::temp_dir().join("flotilla-e2e-go-cache"));
    std::fs::create_dir_all(&dir).expect("create shared GOCACHE");
    dir
}
