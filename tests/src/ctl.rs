//! Runs the real `flotillactl` binary against a cluster.

use std::process::Command;

use crate::node::ctl_binary;

/// The admin token the harness gives nodes started with [`admin_env`].
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

/// What one `flotillactl` run printed and how it ended.
#[derive(Debug)]
pub struct CtlRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CtlRun {
    pub fn summary(&self) -> String {
        format!("success={} stdout={:?} stderr={:?}", self.success, self.stdout, self.stderr)
    }
}

/// Runs `flotillactl args…` with `FLOTILLA_CLUSTER=cluster` and, if given,
/// `FLOTILLA_ADMIN_TOKEN=token`; nothing else of the caller's environment
/// named `FLOTILLA_*` leaks in.
pub fn flotillactl(cluster: &str, token: Option<&str>, args: &[&str]) -> CtlRun {
    flotillactl_with(cluster, token, &[], args)
}

/// [`flotillactl`] with extra environment (e.g. `FLOTILLA_TLS_CA_FILE`).
pub fn flotillactl_with(cluster: &str, token: Option<&str>, env: &[(&str, String)], args: &[&str]) -> CtlRun {
    let mut cmd = Command::new(ctl_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLOTILLA") {
            cmd.env_remove(key);
        }
    }
    cmd.env("FLOTILLA_CLUSTER", cluster).args(args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(token) = token {
        cmd.env("FLOTILLA_ADMIN_TOKEN", token);
    }
    let out = cmd.output().expect("run flotillactl");
    CtlRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
