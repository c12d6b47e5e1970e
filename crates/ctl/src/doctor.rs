//! `flotillactl doctor --client`: are the go command's settings on this
//! machine (`go env`) right for the mirror? Each problem comes with the
//! exact line that fixes it in bash, PowerShell, CMD and with `go env -w`.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{bail, Context, Result};
use proto::v1::{ClusterStatusReply, ClusterStatusRequest};
use serde_json::json;

use crate::client::Admin;
use crate::Outcome;

const GO_VARS: [&str; 6] = ["GOPROXY", "GONOPROXY", "GONOSUMDB", "GOPRIVATE", "GOSUMDB", "GOFLAGS"];

/// One setting that keeps the go command from using the mirror well.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub var: &'static str,
    pub problem: String,
    /// The value to set, or `None` to unset the variable.
    pub fix: Option<String>,
}

/// `mirror` (URLs as clients use them) or, without it, the gateways `admin` reports.
pub async fn client(admin: Option<&Admin>, json: bool, mirror: Option<&str>) -> Result<Outcome> {
    let mirrors: Vec<String> = match (mirror, admin) {
        (Some(url), _) => url.split([',', '|']).map(|u| u.trim().trim_end_matches('/').to_string()).filter(|u| !u.is_empty()).collect(),
        (None, Some(admin)) => gateways(admin).await?,
        (None, None) => bail!("pass --mirror URL, or an admin token so the cluster can be asked for its gateway URLs"),
    };
    if mirrors.is_empty() {
        bail!("--mirror names no URL (e.g. --mirror http://mirror.example.com:8080)");
    }
    let env = go_env()?;
    let findings = check(&env, &mirrors);
    if json {
        let value = json!({
            "go_env": env,
            "mirror": mirrors,
            "problems": findings.iter().map(|f| json!({
                "variable": f.var, "problem": f.problem, "fix": fix_lines(f),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for var in GO_VARS {
            println!("{var}={}", env.get(var).map(String::as_str).unwrap_or(""));
        }
        println!();
        for f in &findings {
            println!("problem: {}: {}", f.var, f.problem);
            for (shell, line) in fix_lines(f) {
                println!("  {shell:<10} {line}");
            }
        }
        if findings.is_empty() {
            println!("ok: the go command on this machine uses the mirror ({})", mirrors.join(" | "));
        } else {
            println!("{} problem(s) with the go command's settings (fix lines above)", findings.len());
        }
    }
    Ok(if findings.is_empty() { Outcome::Ok } else { Outcome::Degraded })
}

/// Every member's gateway URL, primary first.
async fn gateways(admin: &Admin) -> Result<Vec<String>> {
    let status: ClusterStatusReply = admin
        .read(|mut client, req| async move { client.cluster_status(req).await }, ClusterStatusRequest {})
        .await
        .context("cannot ask the cluster for its gateway URLs (or pass --mirror URL)")?;
    let mut members: Vec<_> = status.members.iter().filter(|m| !m.gateway_url.is_empty()).collect();
    members.sort_by_key(|m| m.node_id != status.primary);
    let urls: Vec<String> = members.iter().map(|m| m.gateway_url.trim_end_matches('/').to_string()).collect();
    if urls.is_empty() {
        bail!("no node has announced its gateway URL yet; pass --mirror URL");
    }
    Ok(urls)
}

/// `go env` of the variables that matter, as the go command resolves them.
fn go_env() -> Result<BTreeMap<String, String>> {
    let out = Command::new("go")
        .arg("env")
        .arg("-json")
        .args(GO_VARS)
        .output()
        .context("cannot run `go env` (is the go command installed and on PATH?)")?;
    if !out.status.success() {
        bail!("`go env` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    serde_json::from_slice(&out.stdout).context("cannot read the output of `go env -json`")
}

/// What is wrong with `env` for a mirror reachable at `mirrors`.
pub fn check(env: &BTreeMap<String, String>, mirrors: &[String]) -> Vec<Finding> {
    let get = |var: &str| env.get(var).map(|v| v.trim().to_string()).unwrap_or_default();
    let wanted = mirrors.join("|");
    let mut out = Vec::new();
    let proxies: Vec<String> = get("GOPROXY").split([',', '|']).map(|p| p.trim().trim_end_matches('/').to_string()).collect();
    let first = proxies.first().cloned().unwrap_or_default();
    if !mirrors.contains(&first) {
        let problem = match first.as_str() {
            "" | "off" => format!("GOPROXY is {:?}: the go command does not use the mirror", get("GOPROXY")),
            "direct" => "GOPROXY starts with direct: the go command fetches from version control, not from the mirror".to_string(),
            _ if proxies.iter().any(|p| mirrors.contains(p)) => {
                format!("GOPROXY is {:?}: the mirror is not first, so the go command asks {first} before it", get("GOPROXY"))
            }
            _ => format!("GOPROXY is {:?}, not the mirror", get("GOPROXY")),
        };
        out.push(Finding { var: "GOPROXY", problem, fix: Some(wanted) });
    }
    for var in ["GOPRIVATE", "GONOPROXY"] {
        if get(var).split(',').any(|g| matches!(g.trim(), "*" | "*/*")) {
            let problem = format!("{var} is {:?}: every module bypasses the mirror", get(var));
            out.push(Finding { var, problem, fix: None });
        }
    }
    if get("GOSUMDB") == "off" {
        let problem = "GOSUMDB is off: downloads are not checked against the checksum database; \
                       leave it at its default unless sum.golang.org is blocked"
            .to_string();
        out.push(Finding { var: "GOSUMDB", problem, fix: None });
    }
    if get("GONOSUMDB").split(',').any(|g| g.trim() == "*") {
        out.push(Finding {
            var: "GONOSUMDB",
            problem: "GONOSUMDB is \"*\": no module is checked against the checksum database".into(),
            fix: None,
        });
    }
    if get("GOFLAGS").split_whitespace().any(|f| f.starts_with("-insecure")) {
        let problem = format!("GOFLAGS is {:?}: -insecure allows plain HTTP and unverified TLS", get("GOFLAGS"));
        out.push(Finding { var: "GOFLAGS", problem, fix: None });
    }
    out
}

/// The line that applies `f` in each shell.
fn fix_lines(f: &Finding) -> Vec<(&'static str, String)> {
    let var = f.var;
    match &f.fix {
        Some(value) => vec![
            ("bash", format!("export {var}=\"{value}\"")),
            ("PowerShell", format!("$env:{var}=\"{value}\"")),
            ("CMD", format!("set \"{var}={value}\"")),
            ("go env -w", format!("go env -w {var}=\"{value}\"   (lasting; an environment variable still overrides it)")),
        ],
        None => vec![
            ("bash", format!("unset {var}")),
            ("PowerShell", format!("Remove-Item Env:{var}")),
            ("CMD", format!("set {var}=")),
            ("go env -w", format!("go env -u {var}")),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_mirror_first_is_right() {
        let mirrors = vec!["http://m1:8080".to_string(), "http://m2:8080".to_string()];
        assert!(check(&env(&[("GOPROXY", "http://m2:8080/|http://m1:8080"), ("GOSUMDB", "sum.golang.org")]), &mirrors).is_empty());
    }

    #[test]
    fn wrong_settings_are_named_with_their_fix() {
        let mirrors = vec!["http://m1:8080".to_string()];
        let found = check(
            &env(&[
                ("GOPROXY", "https://proxy.golang.org,http://m1:8080"),
                ("GOSUMDB", "off"),
                ("GOPRIVATE", "*"),
                ("GOFLAGS", "-insecure"),
            ]),
            &mirrors,
        );
        let vars: Vec<&str> = found.iter().map(|f| f.var).collect();
        assert_eq!(vars, ["GOPROXY", "GOPRIVATE", "GOSUMDB", "GOFLAGS"]);
        assert!(found[0].problem.contains("not first"), "{:?}", found[0]);
        let lines = fix_lines(&found[0]);
        assert_eq!(lines[0], ("bash", "export GOPROXY=\"http://m1:8080\"".to_string()));
        assert_eq!(lines[1], ("PowerShell", "$env:GOPROXY=\"http://m1:8080\"".to_string()));
        assert_eq!(lines[2], ("CMD", "set \"GOPROXY=http://m1:8080\"".to_string()));
        assert_eq!(fix_lines(&found[2])[0], ("bash", "unset GOSUMDB".to_string()));
        assert!(check(&env(&[("GOPROXY", "direct")]), &mirrors)[0].problem.contains("version control"));
    }
}
