//! `flotillactl purge MODULE@VERSION`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use proto::PurgeRequest;

use crate::client::Admin;
use crate::{split_target, Outcome};

pub async fn purge(admin: &Admin, json: bool, target: &str, yes: bool) -> Result<Outcome> {
    let (module, version) = split_target(target)?;
    if !yes && std::io::stdin().is_terminal() && !confirm(&format!("Purge {module}@{version} from every node?"))? {
        bail!("not purged (answer y to purge, or pass --yes)");
    }
    let request = PurgeRequest { module: module.into(), version: version.into() };
    let reply = admin.write(|mut client, req| async move { client.purge(req).await }, request).await?;
    if json {
        let json = serde_json::json!({
            "module": module,
            "version": version,
            "zip_sha256": reply.zip_sha256,
            "index": reply.index,
            "primary": reply.primary,
            "grace_seconds": reply.grace_seconds,
        });
        println!("{json}");
    } else {
        match reply.index {
            0 => println!("purged {module}@{version} (node {})", reply.primary),
            index => println!("purged {module}@{version} (raft index {index}, primary node {})", reply.primary),
        }
        if reply.index == 0 {
            println!("(a single node keeps the zip's blob and reuses it if the version is fetched again)");
        } else if !reply.zip_sha256.is_empty() {
            println!(
                "its zip blob {} is deleted on every node in {} s unless another version uses it",
                reply.zip_sha256, reply.grace_seconds
            );
        }
    }
    Ok(Outcome::Ok)
}

/// Asks `question` on the terminal; true for `y` or `yes`.
pub(crate) fn confirm(question: &str) -> Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
