//! `flotillactl warm`: prefetch module versions so CI never waits.
//!
//! The simplest correct design: the versions are requested from the
//! primary's gateway like the go command would (`.info`, `.mod`, `.zip`),
//! so the primary fetches, verifies and commits each one once and the
//! replicator copies it everywhere. A `HEAD` first (answered from the
//! catalog, never fetched) skips what is already cached, so a second run
//! fetches nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use gomod::{ModulePath, Version};
use indicatif::{ProgressBar, ProgressStyle};
use proto::v1::{ClusterStatusReply, ClusterStatusRequest};
use serde_json::json;

use crate::client::Admin;
use crate::output::bytes;
use crate::Outcome;

const PARALLEL: usize = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// One version to warm; `zip` false for go.sum's `/go.mod`-only lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub module: ModulePath,
    pub version: Version,
    pub zip: bool,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.module, self.version)
    }
}

enum Warmed {
    Fetched(u64),
    Cached,
}

pub async fn warm(admin: &Admin, json: bool, specs: &[String], files: &[std::path::PathBuf], gateway: Option<&str>) -> Result<Outcome> {
    let mut targets = Targets::default();
    for spec in specs {
        targets.add_spec(spec).with_context(|| format!("argument {spec:?}"))?;
    }
    for file in files {
        targets.add_file(file)?;
    }
    let targets = targets.into_vec();
    if targets.is_empty() {
        bail!("nothing to warm: give module@version arguments or --file go.sum|go.mod|list");
    }
    let gateway = match gateway {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => primary_gateway(admin).await?,
    };
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().context("cannot build the HTTP client")?;

    let bar = ProgressBar::new(targets.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} versions, {msg} [{elapsed}]").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut fetched_bytes = 0u64;
    let (mut fetched, mut cached, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    let mut results = futures::stream::iter(targets.iter().map(|t| {
        let (http, gateway) = (&http, &gateway);
        async move { (t, warm_one(http, gateway, t).await) }
    }))
    .buffer_unordered(PARALLEL);
    while let Some((target, result)) = results.next().await {
        match result {
            Ok(Warmed::Fetched(n)) => {
                fetched_bytes += n;
                fetched.push(target.to_string());
            }
            Ok(Warmed::Cached) => cached.push(target.to_string()),
            Err(e) => failed.push((target.to_string(), format!("{e:#}"))),
        }
        bar.set_message(format!("{} fetched, {} cached, {} failed, {}", fetched.len(), cached.len(), failed.len(), bytes(fetched_bytes)));
        bar.inc(1);
    }
    bar.finish_and_clear();

    if json {
        let value = json!({
            "gateway": gateway,
            "fetched": fetched,
            "already_cached": cached,
            "failed": failed.iter().map(|(t, e)| json!({ "target": t, "error": e })).collect::<Vec<_>>(),
            "fetched_bytes": fetched_bytes,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{} version(s) through {gateway}: {} fetched ({}), {} already cached, {} failed",
            targets.len(),
            fetched.len(),
            bytes(fetched_bytes),
            cached.len(),
            failed.len()
        );
        for (target, error) in &failed {
            println!("  failed {target}: {error}");
        }
    }
    if !failed.is_empty() {
        bail!("{} of {} version(s) could not be warmed (reasons above)", failed.len(), targets.len());
    }
    Ok(Outcome::Ok)
}

/// The gateway URL of the acting primary (a follower's would redirect there).
async fn primary_gateway(admin: &Admin) -> Result<String> {
    let status: ClusterStatusReply =
        admin.read(|mut client, req| async move { client.cluster_status(req).await }, ClusterStatusRequest {}).await?;
    let primary = status.members.iter().find(|m| m.node_id == status.primary && status.primary != 0);
    match primary {
        Some(m) if !m.gateway_url.is_empty() => Ok(m.gateway_url.trim_end_matches('/').to_string()),
        Some(m) => bail!("the primary, node {}, has not announced its gateway URL yet; retry, or pass --gateway URL", m.node_id),
        None => bail!("the cluster has no primary right now (`flotillactl status` says why); retry, or pass --gateway URL"),
    }
}

async fn warm_one(http: &reqwest::Client, gateway: &str, target: &Target) -> Result<Warmed> {
    let base = format!("{gateway}/{}/@v/{}", target.module.escaped(), target.version.escaped());
    let parts: &[&str] = if target.zip { &["info", "mod", "zip"] } else { &["info", "mod"] };
    let mut missing = Vec::new();
    for part in parts {
        let url = format!("{base}.{part}");
        let head = http.head(&url).send().await.with_context(|| format!("HEAD {url}"))?;
        if head.status() != reqwest::StatusCode::OK {
            missing.push(url);
        }
    }
    if missing.is_empty() {
        return Ok(Warmed::Cached);
    }
    let mut total = 0;
    for url in missing {
        let resp = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading {url}"))?;
        if status != reqwest::StatusCode::OK {
            let reason = String::from_utf8_lossy(&body);
            bail!("{url}: {status}: {}", reason.lines().next().unwrap_or("").trim());
        }
        total += body.len() as u64;
    }
    Ok(Warmed::Fetched(total))
}

/// The versions to warm, without duplicates, in the order first named.
#[derive(Default)]
pub struct Targets {
    order: Vec<(ModulePath, Version)>,
    zip: BTreeMap<(String, String), bool>,
}

impl Targets {
    pub fn add(&mut self, module: &str, version: &str, zip: bool) -> Result<()> {
        let module = ModulePath::new(module).map_err(|e| anyhow::anyhow!("module {module:?}: {e}"))?;
        let version = Version::new(version).map_err(|e| anyhow::anyhow!("version {version:?}: {e}"))?;
        let key = (module.to_string(), version.to_string());
        match self.zip.get_mut(&key) {
            Some(z) => *z |= zip,
            None => {
                self.zip.insert(key, zip);
                self.order.push((module, version));
            }
        }
        Ok(())
    }

    /// `module@version`.
    pub fn add_spec(&mut self, spec: &str) -> Result<()> {
        let (module, version) = crate::split_target(spec.trim())?;
        self.add(module, version, true)
    }

    /// A go.sum (`*.sum`), a go.mod (`*.mod`) or a file of `module@version` lines.
    pub fn add_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parsed = if name.ends_with(".sum") {
            self.add_go_sum(&text)
        } else if name.ends_with(".mod") {
            self.add_go_mod(&text)
        } else {
            self.add_lines(&text)
        };
        parsed.with_context(|| format!("{}", path.display()))
    }

    pub fn add_go_sum(&mut self, text: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [module, version, hash] = fields[..] else { bail!("line {}: not a go.sum line (module version h1:hash)", n + 1) };
            if !hash.starts_with("h1:") {
                bail!("line {}: not a go.sum line (module version h1:hash)", n + 1);
            }
            let (version, zip) = match version.strip_suffix("/go.mod") {
                Some(v) => (v, false),
                None => (version, true),
            };
            self.add(module, version, zip).with_context(|| format!("line {}", n + 1))?;
        }
        Ok(())
    }

    pub fn add_go_mod(&mut self, text: &str) -> Result<()> {
        for (module, version) in gomod::go_mod_requires(text.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))? {
            self.add(&module, &version, true)?;
        }
        Ok(())
    }

    /// One `module@version` per line; `#` starts a comment.
    pub fn add_lines(&mut self, text: &str) -> Result<()> {
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                self.add_spec(line).with_context(|| format!("line {}", n + 1))?;
            }
        }
        Ok(())
    }

    pub fn into_vec(self) -> Vec<Target> {
        let zip = self.zip;
        self.order
            .into_iter()
            .map(|(module, version)| {
                let zip = zip.get(&(module.to_string(), version.to_string())).copied().unwrap_or(true);
                Target { module, version, zip }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: Targets) -> Vec<(String, bool)> {
        t.into_vec().into_iter().map(|t| (t.to_string(), t.zip)).collect()
    }

    #[test]
    fn go_sum_lines_name_zips_and_go_mod_only_versions() {
        let mut t = Targets::default();
        t.add_go_sum(
            "example.com/a v1.0.0 h1:abc=\nexample.com/a v1.0.0/go.mod h1:def=\nexample.com/b v0.1.0/go.mod h1:x=\n\nexample.com/b v0.1.0/go.mod h1:x=\n",
        )
        .unwrap();
        assert_eq!(names(t), [("example.com/a@v1.0.0".to_string(), true), ("example.com/b@v0.1.0".to_string(), false)]);
    }

    #[test]
    fn lines_and_go_mod_files_are_read() {
        let mut t = Targets::default();
        t.add_lines("# warm these\nexample.com/a@v1.0.0\n\nexample.com/c@v2.0.0+incompatible # old\n").unwrap();
        t.add_go_mod("module example.com/app\nrequire (\n\texample.com/a v1.0.0\n\texample.com/d v0.3.0 // indirect\n)\n").unwrap();
        let got: Vec<String> = names(t).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, ["example.com/a@v1.0.0", "example.com/c@v2.0.0+incompatible", "example.com/d@v0.3.0"]);
    }

    #[test]
    fn malformed_input_names_the_line() {
        let mut t = Targets::default();
        let err = format!("{:#}", t.add_lines("example.com/a@v1.0.0\nexample.com/b\n").unwrap_err());
        assert!(err.contains("line 2") && err.contains("is not module@version"), "{err}");
        let err = format!("{:#}", t.add_go_sum("example.com/a v1.0.0\n").unwrap_err());
        assert!(err.contains("line 1: not a go.sum line"), "{err}");
        let err = format!("{:#}", t.add_spec("example.com/a@latest").unwrap_err());
        assert!(err.contains("version \"latest\""), "{err}");
    }
}
