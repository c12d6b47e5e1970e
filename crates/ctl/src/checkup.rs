//! `flotillactl doctor` (without --client): the troubleshooting flow for the
//! mirror itself — members and quorum, clock skew, free disk, each node's
//! upstream (DNS, TCP, TLS), each checksum database (reachable, its tree
//! head verified), and a real module fetched through the primary with its
//! hashes checked against the catalog.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use proto::v1::{CheckSumdbRequest, CheckUpstreamRequest, ClusterStatusReply, ClusterStatusRequest, ModuleVersion, ShowModuleRequest};
use serde_json::json;
use sha2::Digest;

use crate::client::Admin;
use crate::output::bytes;
use crate::Outcome;

/// Clocks further apart than this break lag figures and list freshness.
const MAX_SKEW_MS: u64 = 2000;
/// Less free disk than this (or 10 %) is a problem.
const MIN_FREE: u64 = 1 << 30;
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a follower may take to apply what the primary just committed.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// One check and its outcome.
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

pub async fn doctor(admin: &Admin, json: bool, module: &str) -> Result<Outcome> {
    let mut checks = Vec::new();
    let status: ClusterStatusReply =
        admin.read(|mut client, req| async move { client.cluster_status(req).await }, ClusterStatusRequest {}).await?;
    members(&status, &mut checks);
    clocks_and_disks(&status, &mut checks);
    let upstream = admin
        .with_timeout(Duration::from_secs(120))
        .read(|mut client, req| async move { client.check_upstream(req).await }, CheckUpstreamRequest { all_members: true })
        .await?;
    for node in &upstream.nodes {
        if !node.reachable {
            checks.push(Check {
                name: format!("node {} upstream", node.node_id),
                ok: false,
                detail: format!("not checked: {}", node.error),
            });
        }
        for p in &node.proxies {
            let detail = match p.step.as_str() {
                "ok" => format!("DNS, TCP, TLS and HTTP work ({})", p.detail),
                step if p.hint.is_empty() => format!("{step} failed: {}", p.detail),
                step => format!("{step} failed: {}\n    → {}", p.detail, p.hint),
            };
            checks.push(Check { name: format!("node {} upstream {}", node.node_id, p.proxy), ok: p.step == "ok", detail });
        }
    }
    sumdb(admin, &mut checks).await;
    checks.push(round_trip(admin, &status, module).await);

    let problems = checks.iter().filter(|c| !c.ok).count();
    if json {
        let value = json!({
            "checks": checks.iter().map(|c| json!({ "check": c.name, "ok": c.ok, "detail": c.detail })).collect::<Vec<_>>(),
            "problems": problems,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for c in &checks {
            println!("{} {}: {}", if c.ok { "ok     " } else { "PROBLEM" }, c.name, c.detail);
        }
        match problems {
            0 => println!("no problem found"),
            n => println!("{n} problem(s) found (see PROBLEM lines above)"),
        }
    }
    Ok(if problems == 0 { Outcome::Ok } else { Outcome::Degraded })
}

fn members(status: &ClusterStatusReply, checks: &mut Vec<Check>) {
    for m in &status.members {
        let detail =
            if m.reachable { format!("answers at {}", m.cluster_addr) } else { format!("unreachable at {}: {}", m.cluster_addr, m.error) };
        checks.push(Check { name: format!("node {} reachable", m.node_id), ok: m.reachable, detail });
    }
    let voters = status.members.iter().filter_map(|m| m.status.as_ref()).map(|s| s.voters.clone()).max_by_key(Vec::len).unwrap_or_default();
    let up = voters.iter().filter(|id| status.members.iter().any(|m| m.node_id == **id && m.reachable)).count();
    let quorum = voters.len() / 2 + 1;
    checks.push(Check {
        name: "quorum".into(),
        ok: up >= quorum,
        detail: format!("{up} of {} voters reachable, {quorum} needed", voters.len()),
    });
    let detail = match status.primary {
        0 => "no member acts as primary: an election, or no quorum; misses and writes wait".to_string(),
        id => format!("node {id}"),
    };
    checks.push(Check { name: "primary".into(), ok: status.primary != 0, detail });
}

fn clocks_and_disks(status: &ClusterStatusReply, checks: &mut Vec<Check>) {
    let clocks: Vec<(u64, u64)> = status.members.iter().filter_map(|m| m.status.as_ref().map(|s| (m.node_id, s.unix_time_ms))).collect();
    if let (Some(early), Some(late)) = (clocks.iter().min_by_key(|c| c.1), clocks.iter().max_by_key(|c| c.1)) {
        let skew = late.1 - early.1;
        let detail = if skew > MAX_SKEW_MS {
            format!("node {} is {skew} ms ahead of node {}: run NTP (chrony, systemd-timesyncd) on every node", late.0, early.0)
        } else {
            format!("{skew} ms between the nodes' clocks (at most {MAX_SKEW_MS} ms)")
        };
        checks.push(Check { name: "clock skew".into(), ok: skew <= MAX_SKEW_MS, detail });
    }
    for (id, s) in status.members.iter().filter_map(|m| m.status.as_ref().map(|s| (m.node_id, s))) {
        let low = s.disk_total_bytes > 0 && (s.disk_free_bytes < MIN_FREE || s.disk_free_bytes < s.disk_total_bytes / 10);
        let detail = format!("{} free of {} (blobs use {})", bytes(s.disk_free_bytes), bytes(s.disk_total_bytes), bytes(s.blob_bytes));
        checks.push(Check { name: format!("node {id} disk"), ok: !low, detail });
    }
}

/// Each configured checksum database: its tree head fetched and verified
/// by the primary now, and the newest verified head the cluster keeps.
async fn sumdb(admin: &Admin, checks: &mut Vec<Check>) {
    let reply = admin
        .with_timeout(Duration::from_secs(90))
        .read(|mut client, req| async move { client.check_sumdb(req).await }, CheckSumdbRequest {})
        .await;
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            checks.push(Check { name: "checksum databases".into(), ok: false, detail: format!("not checked: {e:#}") });
            return;
        }
    };
    if reply.databases.is_empty() {
        let detail = "none configured (sumdb = []): fetched versions are not checked against a checksum database; \
                      configure a [[sumdb]] table (sum.golang.org is the default)";
        checks.push(Check { name: "checksum databases".into(), ok: true, detail: detail.into() });
    }
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    for db in &reply.databases {
        let head = match db.verified_at_ms {
            0 => "no verified tree head recorded".to_string(),
            at => format!(
                "verified tree head: {} records, fetched {} ago",
                db.tree_size,
                crate::output::age(now_ms.saturating_sub(at) as f64 / 1000.0)
            ),
        };
        let detail = if db.reachable {
            format!("reachable at {}; {head}", db.url)
        } else {
            format!("UNREACHABLE or unverified at {}: {}; {head} (clients are served what the cluster recorded; new versions cannot be verified, so they are refused)", db.url, db.error)
        };
        checks.push(Check { name: format!("checksum database {}", db.name), ok: db.reachable, detail });
    }
}

/// The catalog entry of a version just fetched, as the node asked knows it:
/// a follower may apply the entry a moment after the primary answered.
async fn recorded_zip(admin: &Admin, module: &gomod::ModulePath, version: &gomod::Version) -> Result<ModuleVersion> {
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    loop {
        let request = ShowModuleRequest { module: module.to_string(), version: version.to_string() };
        let shown = admin.read(|mut client, req| async move { client.show_module(req).await }, request).await;
        match shown.map(|s| s.versions.into_iter().next()) {
            Ok(Some(v)) if !v.zip_sha256.is_empty() => return Ok(v),
            _ if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => bail!("the catalog does not record the zip just fetched"),
            Err(e) => return Err(e.context("the catalog does not list the version just fetched")),
        }
    }
}

/// Fetches `spec` through the primary's gateway and checks its zip against
/// the catalog's sha256 and `h1:`.
async fn round_trip(admin: &Admin, status: &ClusterStatusReply, spec: &str) -> Check {
    let name = format!("round trip {spec}");
    match fetch_and_check(admin, status, spec).await {
        Ok(detail) => Check { name, ok: true, detail },
        Err(e) => Check { name, ok: false, detail: format!("{e:#}") },
    }
}

async fn fetch_and_check(admin: &Admin, status: &ClusterStatusReply, spec: &str) -> Result<String> {
    let (module, version) = crate::split_target(spec)?;
    let module = gomod::ModulePath::new(module).map_err(|e| anyhow::anyhow!("module {module:?}: {e}"))?;
    let version = gomod::Version::new(version).map_err(|e| anyhow::anyhow!("version {version:?}: {e}"))?;
    let Some(primary) = status.members.iter().find(|m| m.node_id == status.primary && !m.gateway_url.is_empty()) else {
        bail!("no primary with a gateway URL to fetch through");
    };
    let http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
    let base = format!("{}/{}/@v/{}", primary.gateway_url.trim_end_matches('/'), module.escaped(), version.escaped());
    let mut zip = Vec::new();
    for part in ["info", "mod", "zip"] {
        let url = format!("{base}.{part}");
        let resp = http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        let code = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading {url}"))?;
        if !code.is_success() {
            bail!("GET {url}: {code}: {}", String::from_utf8_lossy(&body).lines().next().unwrap_or("").trim());
        }
        if part == "zip" {
            zip = body.to_vec();
        }
    }
    let sha = hex::encode(sha2::Sha256::digest(&zip));
    let summary = gomod::check_zip(std::io::Cursor::new(&zip), &module, &version, &gomod::ZipLimits::default())
        .map_err(|e| anyhow::anyhow!("the zip served is not a valid module zip: {e}"))?;
    let recorded = recorded_zip(admin, &module, &version).await?;
    if recorded.zip_sha256 != sha || recorded.h1 != summary.h1 {
        bail!("the zip served (sha256 {sha}, {}) differs from the catalog's (sha256 {}, {})", summary.h1, recorded.zip_sha256, recorded.h1);
    }
    Ok(format!("fetched through node {} ({}); sha256 and {} match the catalog", primary.node_id, bytes(zip.len() as u64), summary.h1))
}
