//! The Docker engine as the container tests use it: whether there is one,
//! the `docker` and compose commands, and the base image the tests build
//! themselves (no registry is needed: see `tests/containers/base-image.sh`).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Tag of the base image; change the version to rebuild it everywhere.
pub const BASE_IMAGE: &str = "flotilla-test-base:bookworm-1";

/// Whether `docker info` reaches an engine.
pub fn engine_available() -> bool {
    Command::new("docker").arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The outcome of one command, with what it printed.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `cmd` to completion.
pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run::from(out)
}

/// Runs `cmd` and panics with its output unless it succeeds; returns stdout.
pub fn check(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.success, "{cmd:?} failed:\n{}\n{}", out.stdout, out.stderr);
    out.stdout
}

/// `docker args...`.
pub fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

/// The compose command of this machine: `docker compose` (v2) when it
/// works, else `docker-compose` (v1).
pub fn compose_command() -> Command {
    static V2: OnceLock<bool> = OnceLock::new();
    let v2 = *V2.get_or_init(|| run(&mut docker(&["compose", "version"])).success);
    if v2 {
        docker(&["compose"])
    } else {
        Command::new("docker-compose")
    }
}

/// The repository root (the compose file and `deploy/` live there).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Builds [`BASE_IMAGE`] unless the engine has it. The root file system is
/// cached in `$FLOTILLA_IMAGE_CACHE` (default `~/.cache/flotilla-images`).
pub fn ensure_base_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cache = std::env::var_os("FLOTILLA_IMAGE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
            home.join(".cache").join("flotilla-images")
        });
        let script = repo_root().join("tests/containers/base-image.sh");
        let out = run(Command::new("sh").arg(&script).arg(BASE_IMAGE).arg(&cache));
        assert!(
            out.success,
            "building {BASE_IMAGE} with {} failed (needs root and debootstrap):\n{}\n{}",
            script.display(),
            out.stdout,
            out.stderr
        );
    });
    BASE_IMAGE
}

/// The canonical GOROOT of the host's go command and the directories it
/// links into (Debian's `/usr/lib/go-X/src` points into `/usr/share/go-X`),
/// to mount read-only into a client container.
pub fn go_mounts() -> Vec<PathBuf> {
    let goroot = check(Command::new("go").args(["env", "GOROOT"]));
    let goroot = std::fs::canonicalize(goroot.trim()).expect("GOROOT of the host's go command");
    let mut mounts = vec![goroot.clone()];
    for entry in ["src", "api", "misc"] {
        let Ok(target) = std::fs::canonicalize(goroot.join(entry)) else { continue };
        if let Some(parent) = target.parent() {
            if !target.starts_with(&goroot) && !mounts.iter().any(|m| parent.starts_with(m)) {
                mounts.push(parent.to_path_buf());
            }
        }
    }
    mounts
}

/// The prefix of this machine's test projects: `flotilla-t<host>-`, where
/// `<host>` is a short hash of the host name, so that processes of another
/// machine (or pid namespace) sharing the engine are never mistaken for
/// dead ones. A project is `<prefix><pid>-<n>`.
pub fn project_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("flotilla-t{}-", &crate::sha256_hex(host.trim().as_bytes())[..6])
}

/// Removes what container tests of processes that no longer run left
/// behind (a test binary killed before its cleanup ran): containers,
/// volumes and networks of this machine's projects whose pid is gone. Only
/// this naming scheme is touched, never anything else on the engine.
pub fn sweep_stale_projects() {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        let prefix = project_prefix();
        let stale = |name: &str| {
            let pid = name.strip_prefix(prefix.as_str()).and_then(|rest| rest.split(['-', '_']).next());
            pid.and_then(|p| p.parse::<u32>().ok()).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        };
        let names =
            |args: &[&str]| -> Vec<String> { run(&mut docker(args)).stdout.lines().map(str::to_owned).filter(|n| stale(n)).collect() };
        let filter = format!("name={prefix}");
        for container in names(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]) {
            run(&mut docker(&["rm", "-f", "-v", &container]));
        }
        for volume in names(&["volume", "ls", "-q", "--filter", &filter]) {
            run(&mut docker(&["volume", "rm", &volume]));
        }
        for network in names(&["network", "ls", "--filter", &filter, "--format", "{{.Name}}"]) {
            run(&mut docker(&["network", "rm", &network]));
        }
    });
}
