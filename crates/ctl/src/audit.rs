//! `flotillactl audit`: who changed what, when, and how it ended.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use proto::v1::{AuditEntry, AuditRequest};
use serde_json::json;

use crate::client::Admin;
use crate::output::table;
use crate::Outcome;

pub async fn audit(admin: &Admin, json: bool, limit: u32) -> Result<Outcome> {
    let reply = admin.read(|mut client, req| async move { client.audit(req).await }, AuditRequest { limit }).await?;
    if json {
        let entries: Vec<_> = reply
            .entries
            .iter()
            .map(|e| {
                json!({
                    "index": e.index, "at": when(e), "at_ms": e.at_ms, "who": e.who, "action": e.action,
                    "target": e.target, "result": e.result, "via": e.via,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "entries": entries }))?);
        return Ok(Outcome::Ok);
    }
    if reply.entries.is_empty() {
        println!("the audit log is empty: no admin call has changed anything yet");
        return Ok(Outcome::Ok);
    }
    let mut t = table(&["INDEX", "WHEN (UTC)", "WHO", "ACTION", "TARGET", "RESULT", "VIA NODE"]);
    for e in &reply.entries {
        t.add_row(vec![
            e.index.to_string(),
            when(e),
            e.who.clone(),
            e.action.clone(),
            e.target.clone(),
            e.result.clone(),
            e.via.to_string(),
        ]);
    }
    println!("{t}");
    Ok(Outcome::Ok)
}

fn when(e: &AuditEntry) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(e.at_ms)).to_string()
}
