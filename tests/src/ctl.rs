//! Runs the real `flotillactl` binary against a cluster.

use std::process::Command;

use crate::node::ctl_binary;

/// The admin token the harness gives nodes started with [`admin_env`].
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

/// What one `flotillactl` run printed and how it ended.
#[derive(Debug)]
pub struct CtlRun {
    pub success: bool,
    /// The exit status (`None` when killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CtlRun {
    pub fn summary(&self) -> String {
        format!("success={} code={:?} stdout={:?} stderr={:?}", self.success, self.code, self.stdout, self.stderr)
    }

    /// stdout parsed as JSON (for `--json` runs); panics with the run on failure.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.summary()))
    }

    /// The last non-empty line of stdout.
    pub fn last_line(&self) -> &str {
        self.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
    }
}

/// Runs `flotillactl args…` with `FLOTILLA_CLUSTER=cluster` and, if given,
/// `FLOTILLA_ADMIN_TOKEN=token`; nothing else of the caller's environment
/// named `FLOTILLA_*` leaks in.
pub fn flotillactl(cluster: &str, token: Option<&str>, args: &[&str]) -> CtlRun {
    flotillactl_env(cluster, token, args, &[])
}

/// [`flotillactl`] with extra environment variables (e.g. the go command's, or `FLOTILLA_TLS_CA_FILE`).
pub fn flotillactl_env(cluster: &str, token: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> CtlRun {
    let mut cmd = Command::new(ctl_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLOTILLA") {
            cmd.env_remove(key);
        }
    }
    cmd.env("FLOTILLA_CLUSTER", cluster).args(args);
    cmd.envs(env.iter().copied());
    if let Some(token) = token {
        cmd.env("FLOTILLA_ADMIN_TOKEN", token);
    }
    let out = cmd.output().expect("run flotillactl");
    CtlRun {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
