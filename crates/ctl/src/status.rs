//! `flotillactl status` and `flotillactl replication`: the cluster as the
//! first node that answers sees it (`Admin.ClusterStatus`).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use proto::v1::{ClusterStatusReply, ClusterStatusRequest, MemberStatus, NodeStatusReply};
use serde_json::{json, Value};

use crate::client::Admin;
use crate::output::{age, bytes, table};
use crate::Outcome;

/// Blobs missing for longer than this make a member "behind".
const STUCK_LAG_SECONDS: f64 = 60.0;

async fn fetch(admin: &Admin) -> Result<ClusterStatusReply> {
    admin.read(|mut client, req| async move { client.cluster_status(req).await }, ClusterStatusRequest {}).await
}

pub async fn status(admin: &Admin, json: bool) -> Result<Outcome> {
    let reply = fetch(admin).await?;
    let problems = problems(&reply);
    if json {
        let mut value = cluster_json(&reply);
        value["healthy"] = json!(problems.is_empty());
        value["problems"] = json!(problems);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_status(&reply);
        println!("{}", verdict(&reply, &problems));
    }
    Ok(if problems.is_empty() { Outcome::Ok } else { Outcome::Degraded })
}

fn print_status(reply: &ClusterStatusReply) {
    let mut t =
        table(&["NODE", "ROLE", "TERM", "APPLIED", "COMMITTED", "REACHABLE", "GATEWAY", "MISSING", "DISK USED", "DISK FREE", "VERSION"]);
    for m in &reply.members {
        let s = m.status.as_ref();
        let num = |f: fn(&NodeStatusReply) -> u64| s.map_or("-".to_string(), |s| f(s).to_string());
        let missing = if m.missing_blobs == 0 {
            "0".to_string()
        } else {
            format!("{} ({}, oldest {})", m.missing_blobs, bytes(m.missing_bytes), age(m.oldest_missing_seconds))
        };
        t.add_row(vec![
            m.node_id.to_string(),
            role(m, reply.primary),
            num(|s| s.term),
            num(|s| s.last_applied),
            num(|s| s.committed),
            if m.reachable { "yes".to_string() } else { "NO".to_string() },
            if m.gateway_url.is_empty() { "-".to_string() } else { m.gateway_url.clone() },
            missing,
            s.map_or("-".into(), |s| bytes(s.blob_bytes)),
            s.map_or("-".into(), |s| if s.disk_total_bytes == 0 { "?".into() } else { bytes(s.disk_free_bytes) }),
            s.map_or("-".into(), |s| s.version.clone()),
        ]);
    }
    println!("{t}");
    for m in reply.members.iter().filter(|m| !m.reachable) {
        println!("node {} ({}): {}", m.node_id, m.cluster_addr, m.error);
    }
    if !reply.lag_error.is_empty() {
        println!("replication lag unknown: {}", reply.lag_error);
    }
    for line in worker_errors(reply) {
        println!("{line}");
    }
}

/// One line per background worker that failed or met an error, with when.
fn worker_errors(reply: &ClusterStatusReply) -> Vec<String> {
    let mut lines = Vec::new();
    for m in &reply.members {
        for w in m.status.iter().flat_map(|s| &s.workers).filter(|w| w.state == "failed" || !w.last_error.is_empty()) {
            let at = std::time::UNIX_EPOCH + Duration::from_millis(w.last_error_at_ms);
            lines.push(format!(
                "node {} worker {} ({}, {} errors): last error at {}: {}",
                m.node_id,
                w.name,
                w.state,
                w.errors,
                humantime::format_rfc3339_seconds(at),
                w.last_error
            ));
        }
    }
    lines
}

fn role(m: &MemberStatus, primary: u64) -> String {
    let Some(s) = &m.status else { return "-".to_string() };
    match s.role.as_str() {
        "standalone" => "standalone".to_string(),
        _ if m.node_id == primary => "primary".to_string(),
        "leader" if !s.acting_primary => "leader (no quorum)".to_string(),
        other => other.to_string(),
    }
}

/// Why the cluster is degraded; empty when it is healthy.
pub fn problems(reply: &ClusterStatusReply) -> Vec<String> {
    let mut out = Vec::new();
    for m in reply.members.iter().filter(|m| !m.reachable) {
        out.push(format!("node {} is unreachable", m.node_id));
    }
    let primary = reply.members.iter().find(|m| m.node_id == reply.primary).and_then(|m| m.status.as_ref());
    match primary {
        None => out.push("no primary (an election, or no quorum)".to_string()),
        Some(p) => {
            for (id, s) in reply.members.iter().filter_map(|m| m.status.as_ref().map(|s| (m.node_id, s))) {
                if s.last_applied < p.committed {
                    out.push(format!("node {id} is behind: applied {} of {} committed entries", s.last_applied, p.committed));
                }
            }
        }
    }
    for m in reply.members.iter().filter(|m| m.missing_blobs > 0 && m.oldest_missing_seconds > STUCK_LAG_SECONDS) {
        out.push(format!("node {} lacks {} blob(s) for {}", m.node_id, m.missing_blobs, age(m.oldest_missing_seconds)));
    }
    out
}

fn verdict(reply: &ClusterStatusReply, problems: &[String]) -> String {
    let reachable = reply.members.iter().filter(|m| m.reachable).count();
    if problems.is_empty() {
        format!("healthy: {reachable} of {} members reachable, primary node {}", reply.members.len(), reply.primary)
    } else {
        format!("degraded: {}", problems.join("; "))
    }
}

fn node_json(s: &NodeStatusReply) -> Value {
    json!({
        "node_id": s.node_id,
        "role": s.role,
        "acting_primary": s.acting_primary,
        "term": s.term,
        "leader": (s.leader != 0).then_some(s.leader),
        "last_applied": s.last_applied,
        "committed": s.committed,
        "gateway_url": s.gateway_url,
        "version": s.version,
        "uptime_seconds": s.uptime_seconds,
        "blobs": { "count": s.blob_count, "bytes": s.blob_bytes },
        "disk": { "free_bytes": s.disk_free_bytes, "total_bytes": s.disk_total_bytes },
        "unix_time_ms": s.unix_time_ms,
        "queue": {
            "blobs": s.queue_blobs,
            "bytes": s.queue_bytes,
            "oldest_seconds": s.queue_oldest_seconds,
            "in_flight": s.in_flight,
        },
        "received_bytes": s.received_bytes,
        "sent_bytes": s.sent_bytes,
        "replicated_blobs": s.replicated_blobs,
        "pull_failures": s.pull_failures,
        "failing": s.failing.iter().map(|f| json!({
            "sha256": f.sha256, "size": f.size, "attempts": f.attempts, "last_error": f.last_error,
        })).collect::<Vec<_>>(),
        "voters": s.voters,
        "workers": s.workers.iter().map(|w| json!({
            "name": w.name, "state": w.state, "detail": (!w.detail.is_empty()).then_some(&w.detail),
            "last_error": (!w.last_error.is_empty()).then_some(&w.last_error),
            "last_error_at_ms": (w.last_error_at_ms != 0).then_some(w.last_error_at_ms),
            "errors": w.errors, "completed": w.completed,
        })).collect::<Vec<_>>(),
    })
}

fn cluster_json(reply: &ClusterStatusReply) -> Value {
    let members: Vec<Value> = reply
        .members
        .iter()
        .map(|m| {
            json!({
                "node_id": m.node_id,
                "cluster_addr": m.cluster_addr,
                "gateway_url": (!m.gateway_url.is_empty()).then_some(&m.gateway_url),
                "reachable": m.reachable,
                "error": (!m.error.is_empty()).then_some(&m.error),
                "role": role(m, reply.primary),
                "missing_blobs": m.missing_blobs,
                "missing_bytes": m.missing_bytes,
                "oldest_missing_seconds": m.oldest_missing_seconds,
                "status": m.status.as_ref().map(node_json),
            })
        })
        .collect();
    json!({
        "answered_by": reply.answered_by,
        "primary": (reply.primary != 0).then_some(reply.primary),
        "members": members,
        "lag_error": (!reply.lag_error.is_empty()).then_some(&reply.lag_error),
    })
}

pub async fn replication(admin: &Admin, json: bool, watch: bool, interval: Duration) -> Result<Outcome> {
    let mut previous: Option<(Instant, ClusterStatusReply)> = None;
    let terminal = std::io::stdout().is_terminal();
    loop {
        let reply = fetch(admin).await?;
        let now = Instant::now();
        let rates = previous.as_ref().map(|(at, before)| rates(before, &reply, now.duration_since(*at)));
        if json {
            let mut value = lag_json(&reply);
            if let Some(rates) = &rates {
                for (id, rate) in rates {
                    value["nodes"][id.to_string()]["received_bytes_per_second"] = json!(rate);
                }
            }
            println!("{}", if watch { serde_json::to_string(&value)? } else { serde_json::to_string_pretty(&value)? });
        } else {
            if watch && terminal {
                // Back to the top-left corner and clear: the table redraws in place.
                print!("\x1b[H\x1b[2J");
            }
            print_lag(&reply, rates.as_deref());
            if watch {
                println!("every {} — Ctrl-C to stop", humantime::format_duration(interval));
            }
        }
        std::io::stdout().flush()?;
        if !watch {
            return Ok(Outcome::Ok);
        }
        previous = Some((now, reply));
        tokio::select! {
            _ = tokio::time::sleep(interval) => {},
            _ = tokio::signal::ctrl_c() => return Ok(Outcome::Ok),
        }
    }
}

/// Bytes per second each node received from peers between two samples.
fn rates(before: &ClusterStatusReply, now: &ClusterStatusReply, elapsed: Duration) -> Vec<(u64, f64)> {
    let secs = elapsed.as_secs_f64().max(0.001);
    now.members
        .iter()
        .filter_map(|m| {
            let was = before.members.iter().find(|b| b.node_id == m.node_id)?.status.as_ref()?.received_bytes;
            let is = m.status.as_ref()?.received_bytes;
            Some((m.node_id, is.saturating_sub(was) as f64 / secs))
        })
        .collect()
}

fn print_lag(reply: &ClusterStatusReply, rates: Option<&[(u64, f64)]>) {
    let mut t =
        table(&["NODE", "MISSING BLOBS", "MISSING BYTES", "OLDEST MISSING", "QUEUE", "PULLING", "RECEIVED", "THROUGHPUT", "FAILING"]);
    for m in &reply.members {
        let s = m.status.as_ref();
        let rate = rates.and_then(|r| r.iter().find(|(id, _)| *id == m.node_id)).map(|(_, r)| format!("{}/s", bytes(*r as u64)));
        t.add_row(vec![
            m.node_id.to_string(),
            m.missing_blobs.to_string(),
            bytes(m.missing_bytes),
            if m.missing_blobs == 0 { "-".to_string() } else { age(m.oldest_missing_seconds) },
            s.map_or("unreachable".into(), |s| format!("{} ({})", s.queue_blobs, bytes(s.queue_bytes))),
            s.map_or("-".into(), |s| s.in_flight.to_string()),
            s.map_or("-".into(), |s| bytes(s.received_bytes)),
            rate.unwrap_or_else(|| "-".to_string()),
            s.map_or("-".into(), |s| s.failing.len().to_string()),
        ]);
    }
    println!("{t}");
    let (blobs, size) = reply.members.iter().fold((0, 0), |(b, s), m| (b + m.missing_blobs, s + m.missing_bytes));
    let oldest = reply.members.iter().map(|m| m.oldest_missing_seconds).fold(0.0, f64::max);
    if blobs == 0 {
        println!("overall: every node holds every blob");
    } else {
        println!("overall: {blobs} blob copies ({}) missing, the oldest for {}", bytes(size), age(oldest));
    }
    for m in &reply.members {
        for f in m.status.iter().flat_map(|s| &s.failing) {
            println!("node {} failing: blob {} ({}, {} attempts): {}", m.node_id, f.sha256, bytes(f.size), f.attempts, f.last_error);
        }
    }
    if !reply.lag_error.is_empty() {
        println!("replication lag unknown: {}", reply.lag_error);
    }
}

fn lag_json(reply: &ClusterStatusReply) -> Value {
    let mut nodes = serde_json::Map::new();
    for m in &reply.members {
        let s = m.status.as_ref();
        nodes.insert(
            m.node_id.to_string(),
            json!({
                "reachable": m.reachable,
                "missing_blobs": m.missing_blobs,
                "missing_bytes": m.missing_bytes,
                "oldest_missing_seconds": m.oldest_missing_seconds,
                "queue_blobs": s.map(|s| s.queue_blobs),
                "queue_bytes": s.map(|s| s.queue_bytes),
                "in_flight": s.map(|s| s.in_flight),
                "received_bytes": s.map(|s| s.received_bytes),
                "failing": s.map(|s| s.failing.iter().map(|f| json!({
                    "sha256": f.sha256, "size": f.size, "attempts": f.attempts, "last_error": f.last_error,
                })).collect::<Vec<_>>()),
            }),
        );
    }
    let (blobs, size) = reply.members.iter().fold((0, 0), |(b, s), m| (b + m.missing_blobs, s + m.missing_bytes));
    json!({
        "answered_by": reply.answered_by,
        "missing_blobs": blobs,
        "missing_bytes": size,
        "oldest_missing_seconds": reply.members.iter().map(|m| m.oldest_missing_seconds).fold(0.0, f64::max),
        "nodes": nodes,
        "lag_error": (!reply.lag_error.is_empty()).then_some(&reply.lag_error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, applied: u64, committed: u64, acting: bool) -> MemberStatus {
        let status = NodeStatusReply {
            node_id: id,
            role: if acting { "leader".into() } else { "follower".into() },
            acting_primary: acting,
            last_applied: applied,
            committed,
            ..Default::default()
        };
        MemberStatus { node_id: id, reachable: true, status: Some(status), ..Default::default() }
    }

    #[test]
    fn a_healthy_cluster_has_no_problems() {
        let reply = ClusterStatusReply { primary: 1, members: vec![member(1, 9, 9, true), member(2, 9, 9, false)], ..Default::default() };
        assert!(problems(&reply).is_empty());
        assert!(verdict(&reply, &[]).starts_with("healthy"));
    }

    #[test]
    fn workers_with_errors_get_a_line_each() {
        let mut node = member(2, 9, 9, false);
        let worker = |name: &str, state: &str, error: &str| proto::v1::WorkerInfo {
            name: name.into(),
            state: state.into(),
            last_error: error.into(),
            last_error_at_ms: if error.is_empty() { 0 } else { 1_700_000_000_000 },
            errors: u64::from(!error.is_empty()),
            ..Default::default()
        };
        node.status.as_mut().unwrap().workers =
            vec![worker("scrub", "idle", ""), worker("replication-worker-1", "idle", "blob ab: node 1 unreachable")];
        let reply = ClusterStatusReply { primary: 1, members: vec![member(1, 9, 9, true), node], ..Default::default() };
        assert_eq!(
            worker_errors(&reply),
            ["node 2 worker replication-worker-1 (idle, 1 errors): last error at 2023-11-14T22:13:20Z: blob ab: node 1 unreachable"]
        );
    }

    #[test]
    fn unreachable_behind_and_leaderless_members_are_named() {
        let mut down = member(3, 0, 0, false);
        down.reachable = false;
        down.status = None;
        let reply = ClusterStatusReply {
            primary: 1,
            members: vec![member(1, 9, 9, true), member(2, 7, 9, false), down.clone()],
            ..Default::default()
        };
        let found = problems(&reply);
        assert_eq!(found, vec!["node 3 is unreachable".to_string(), "node 2 is behind: applied 7 of 9 committed entries".to_string()]);

        let mut cut_off = member(1, 9, 9, false);
        cut_off.status.as_mut().unwrap().role = "leader".into();
        let reply = ClusterStatusReply { primary: 0, members: vec![cut_off, down], ..Default::default() };
        assert_eq!(role(&reply.members[0], reply.primary), "leader (no quorum)");
        assert!(problems(&reply).iter().any(|p| p.starts_with("no primary")));
    }
}
