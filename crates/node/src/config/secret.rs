//! Files that hold secrets: refused when others may read them.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Refuses a file holding a secret that group or others may read.
pub fn check_private_file(path: &Path, setting: &str) -> Result<()> {
    Ok(proto::tls::check_private(path, setting)?)
}

/// Reads a secret from the file a setting (`setting`) names: not readable
/// by group or others, trimmed, at least 16 printable characters.
pub fn read_secret_file(path: &Path, setting: &str) -> Result<String> {
    check_private_file(path, setting)?;
    let secret = std::fs::read_to_string(path).with_context(|| format!("cannot read {setting} {}", path.display()))?.trim().to_string();
    if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("{setting} {} must hold at least 16 printable characters (e.g. `openssl rand -hex 32`)", path.display());
    }
    Ok(secret)
}
