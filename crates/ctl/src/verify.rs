//! `flotillactl verify`: every node re-hashes its blobs and repairs corrupt
//! copies from a good one; `--sumdb`: the cached versions re-checked
//! against the checksum database.

use std::time::Duration;

use anyhow::{bail, Result};
use proto::v1::{VerifyReply, VerifyRequest, VerifySumdbReply, VerifySumdbRequest};
use serde_json::json;

use crate::client::Admin;
use crate::output::{bytes, table};
use crate::Outcome;

/// Verifying re-reads every blob of every node: allow it time.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3600);

pub async fn verify(admin: &Admin, json: bool) -> Result<Outcome> {
    let admin = admin.with_timeout(VERIFY_TIMEOUT);
    let reply: VerifyReply = admin.write(|mut client, req| async move { client.verify(req).await }, VerifyRequest {}).await?;
    let reports = || reply.nodes.iter().filter_map(|n| n.report.as_ref().map(|r| (n.node_id, r)));
    let corrupt: usize = reports().map(|(_, r)| r.corrupt.len()).sum();
    let unrepaired: usize = reports().map(|(_, r)| r.corrupt.iter().filter(|c| !c.repaired).count()).sum();
    let unreadable: usize = reports().map(|(_, r)| r.unreadable.len()).sum();
    let unreachable: Vec<u64> = reply.nodes.iter().filter(|n| !n.reachable).map(|n| n.node_id).collect();
    if json {
        let nodes: Vec<_> = reply
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node_id": n.node_id,
                    "reachable": n.reachable,
                    "error": (!n.error.is_empty()).then_some(&n.error),
                    "checked_blobs": n.report.as_ref().map(|r| r.checked_blobs),
                    "checked_bytes": n.report.as_ref().map(|r| r.checked_bytes),
                    "missing_blobs": n.report.as_ref().map(|r| r.missing_blobs),
                    "corrupt": n.report.as_ref().map(|r| r.corrupt.iter().map(|c| json!({
                        "sha256": c.sha256, "size": c.size, "repaired": c.repaired,
                        "error": (!c.error.is_empty()).then_some(&c.error),
                    })).collect::<Vec<_>>()),
                    "unreadable": n.report.as_ref().map(|r| r.unreadable.iter().map(|u| json!({ "sha256": u.sha256, "error": u.error })).collect::<Vec<_>>()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "nodes": nodes, "corrupt": corrupt, "unrepaired": unrepaired }))?);
    } else {
        let mut t = table(&["NODE", "CHECKED", "BYTES", "CORRUPT", "REPAIRED", "NOT HELD YET", "UNREADABLE"]);
        for n in &reply.nodes {
            match &n.report {
                Some(r) => t.add_row(vec![
                    n.node_id.to_string(),
                    r.checked_blobs.to_string(),
                    bytes(r.checked_bytes),
                    r.corrupt.len().to_string(),
                    r.corrupt.iter().filter(|c| c.repaired).count().to_string(),
                    r.missing_blobs.to_string(),
                    r.unreadable.len().to_string(),
                ]),
                None => {
                    t.add_row(vec![n.node_id.to_string(), "unreachable".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()])
                }
            };
        }
        println!("{t}");
        for (id, r) in reports() {
            for c in &r.corrupt {
                let outcome =
                    if c.repaired { "repaired from a peer".to_string() } else { format!("NOT repaired yet (retrying): {}", c.error) };
                println!("node {id}: blob {} ({}) was corrupt: quarantined, {outcome}", c.sha256, bytes(c.size));
            }
            for u in &r.unreadable {
                println!("node {id}: blob {} could not be read: {}", u.sha256, u.error);
            }
        }
        for n in reply.nodes.iter().filter(|n| !n.reachable) {
            println!("node {}: not verified: {}", n.node_id, n.error);
        }
        if corrupt == 0 && unreadable == 0 && unreachable.is_empty() {
            println!("every blob matches its sha256 on every node");
        } else if unrepaired == 0 && unreadable == 0 && unreachable.is_empty() {
            println!("{corrupt} corrupt blob(s) found and repaired");
        }
    }
    if unrepaired > 0 || unreadable > 0 {
        bail!("{unrepaired} corrupt blob(s) not repaired, {unreadable} blob(s) unreadable (see above)");
    }
    Ok(if unreachable.is_empty() { Outcome::Ok } else { Outcome::Degraded })
}

pub async fn verify_sumdb(admin: &Admin, json: bool) -> Result<Outcome> {
    let admin = admin.with_timeout(VERIFY_TIMEOUT);
    let reply: VerifySumdbReply =
        admin.write(|mut client, req| async move { client.verify_sumdb(req).await }, VerifySumdbRequest {}).await?;
    let count = |kind: &str| reply.findings.iter().filter(|f| f.kind == kind).count();
    let (mismatched, unknown, failed) = (count("mismatch"), count("unknown"), count("error"));
    if json {
        let findings: Vec<_> = reply
            .findings
            .iter()
            .map(|f| {
                json!({
                    "module": f.module, "version": f.version, "kind": f.kind,
                    "file": (!f.file.is_empty()).then_some(&f.file),
                    "catalog_h1": (!f.catalog_h1.is_empty()).then_some(&f.catalog_h1),
                    "database_h1": (!f.database_h1.is_empty()).then_some(&f.database_h1),
                    "detail": f.detail,
                })
            })
            .collect();
        let value = json!({
            "database": reply.database, "matched": reply.matched, "mismatched": mismatched,
            "unknown": unknown, "not_checked": failed, "private_skipped": reply.private, "findings": findings,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        if !reply.findings.is_empty() {
            let mut t = table(&["MODULE", "VERSION", "PROBLEM", "FILE", "CATALOG H1", "DATABASE H1"]);
            for f in &reply.findings {
                let problem = match f.kind.as_str() {
                    "mismatch" => "MISMATCH".to_string(),
                    "unknown" => "unknown to the database".to_string(),
                    _ => "not checked".to_string(),
                };
                t.add_row(vec![f.module.clone(), f.version.clone(), problem, f.file.clone(), f.catalog_h1.clone(), f.database_h1.clone()]);
            }
            println!("{t}");
            for f in reply.findings.iter().filter(|f| f.kind != "mismatch") {
                println!("{}@{}: {}", f.module, f.version, f.detail);
            }
        }
        println!(
            "checksum database {}: {} matched, {mismatched} mismatched, {unknown} unknown to it, {failed} not checked, {} private skipped",
            reply.database, reply.matched, reply.private
        );
        if mismatched > 0 {
            println!(
                "SECURITY: {mismatched} cached file(s) differ from the checksum database: purge them (flotillactl purge MODULE@VERSION); \
                 the next request fetches and verifies them again"
            );
        }
    }
    Ok(if mismatched > 0 || failed > 0 { Outcome::Degraded } else { Outcome::Ok })
}
