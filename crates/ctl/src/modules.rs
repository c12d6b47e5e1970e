//! `flotillactl modules list [PATTERN]` and `modules show MODULE[@VERSION]`.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use clap::Subcommand;
use proto::v1::{ListModulesRequest, ModuleVersion, ShowModuleRequest};
use serde_json::{json, Value};

use crate::client::Admin;
use crate::output::{bytes, fields, table};
use crate::Outcome;

#[derive(Subcommand)]
pub enum ModulesCommand {
    /// Cached module versions, with zip size and the nodes holding the zip.
    #[command(after_help = "Examples:\n  flotillactl modules list\n  flotillactl modules list 'github.com/BurntSushi/*,golang.org/x'")]
    List {
        /// GOPRIVATE-style globs, comma-separated, matched against module path prefixes.
        pattern: Option<String>,
        /// At most this many versions.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// One module (every cached version) or one version: hashes, size, when the zip was fetched, holders, go.sum lines.
    #[command(after_help = "Examples:\n  flotillactl modules show github.com/BurntSushi/toml\n  \
                            flotillactl modules show github.com/BurntSushi/toml@v1.3.2 --json")]
    Show {
        /// `module` or `module@version`.
        target: String,
    },
}

pub async fn run(admin: &Admin, json: bool, command: &ModulesCommand) -> Result<Outcome> {
    match command {
        ModulesCommand::List { pattern, limit } => {
            let request = ListModulesRequest { pattern: pattern.clone().unwrap_or_default(), limit: *limit };
            let reply = admin.read(|mut client, req| async move { client.list_modules(req).await }, request).await?;
            if json {
                let value =
                    json!({ "versions": reply.versions.iter().map(version_json).collect::<Vec<_>>(), "truncated": reply.truncated });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(Outcome::Ok);
            }
            let mut t = table(&["MODULE", "VERSION", "ZIP SIZE", "NODES", "H1"]);
            for v in &reply.versions {
                let size = if v.zip_sha256.is_empty() { "-".to_string() } else { bytes(v.zip_size) };
                t.add_row(vec![v.module.clone(), v.version.clone(), size, holders(v), v.h1.clone()]);
            }
            println!("{t}");
            let total: u64 = reply.versions.iter().map(|v| v.zip_size).sum();
            println!("{} version(s), {} of zips", reply.versions.len(), bytes(total));
            if reply.truncated {
                println!("(more match: narrow the pattern or raise --limit)");
            }
        }
        ModulesCommand::Show { target } => {
            let (module, version) = match target.rsplit_once('@') {
                Some((m, v)) => (m.to_string(), v.to_string()),
                None => (target.clone(), String::new()),
            };
            if module.is_empty() || (target.contains('@') && version.is_empty()) {
                anyhow::bail!("{target:?} is not module or module@version (e.g. github.com/BurntSushi/toml@v1.3.2)");
            }
            let request = ShowModuleRequest { module, version };
            let reply = admin.read(|mut client, req| async move { client.show_module(req).await }, request).await?;
            if json {
                let value = json!({ "versions": reply.versions.iter().map(version_json).collect::<Vec<_>>() });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(Outcome::Ok);
            }
            for (i, v) in reply.versions.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                show(v);
            }
        }
    }
    Ok(Outcome::Ok)
}

fn holders(v: &ModuleVersion) -> String {
    if v.zip_sha256.is_empty() {
        return "-".to_string();
    }
    v.holders.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn show(v: &ModuleVersion) {
    let mut t = fields();
    let or_none = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    t.add_row(vec!["module".into(), v.module.clone()]);
    t.add_row(vec!["version".into(), v.version.clone()]);
    t.add_row(vec!["version time".into(), or_none(&v.time)]);
    t.add_row(vec![".info".into(), if v.has_info { "cached" } else { "-" }.to_string()]);
    t.add_row(vec![".mod".into(), if v.has_mod { "cached" } else { "-" }.to_string()]);
    t.add_row(vec![
        "zip size".into(),
        if v.zip_sha256.is_empty() { "-".into() } else { format!("{} ({} bytes)", bytes(v.zip_size), v.zip_size) },
    ]);
    t.add_row(vec!["zip sha256".into(), or_none(&v.zip_sha256)]);
    t.add_row(vec!["zip h1".into(), or_none(&v.h1)]);
    t.add_row(vec!["go.mod h1".into(), or_none(&v.mod_h1)]);
    t.add_row(vec!["zip fetched".into(), fetched(v).unwrap_or_else(|| "-".into())]);
    t.add_row(vec!["held by nodes".into(), holders(v)]);
    println!("{t}");
    if !v.h1.is_empty() {
        println!("{} {} {}", v.module, v.version, v.h1);
    }
    if !v.mod_h1.is_empty() {
        println!("{} {}/go.mod {}", v.module, v.version, v.mod_h1);
    }
}

/// When the zip was fetched from upstream (RFC 3339), if recorded.
fn fetched(v: &ModuleVersion) -> Option<String> {
    (v.fetched_at_ms > 0).then(|| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(v.fetched_at_ms)).to_string())
}

fn version_json(v: &ModuleVersion) -> Value {
    let zip = (!v.zip_sha256.is_empty()).then(|| {
        json!({
            "sha256": v.zip_sha256, "size": v.zip_size, "h1": v.h1, "holders": v.holders,
            "fetched": fetched(v), "fetched_at_ms": (v.fetched_at_ms > 0).then_some(v.fetched_at_ms),
        })
    });
    json!({
        "module": v.module,
        "version": v.version,
        "time": (!v.time.is_empty()).then_some(&v.time),
        "info": v.has_info,
        "mod": v.has_mod,
        "mod_h1": (!v.mod_h1.is_empty()).then_some(&v.mod_h1),
        "zip": zip,
    })
}
