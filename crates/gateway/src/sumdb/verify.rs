//! Verification on fetch: before the primary stores a version's go.mod or
//! zip, the `h1:` it computed must equal the checksum database's record.
//! No database configured, or a private module (`upstream.private`): no
//! lookup. The database unreachable, or without a record of the version:
//! refused (fail closed), since storing it would serve it unchecked forever.

use std::sync::Arc;

use gomod::sumdb::{parse_lookup, record_hashes, RecordHashes};
use gomod::{ModulePath, Version};

use super::log::{lookup, security_event};
use super::SumdbConfig;
use crate::{ApiError, AppState};

/// Checks a go.mod's `h1:` against the database before it is stored.
pub(crate) async fn check_go_mod(
    state: &Arc<AppState>,
    module: &ModulePath,
    version: &Version,
    h1: &str,
    what: &str,
) -> Result<(), ApiError> {
    match expected(state, module, version, what).await? {
        Some((db, want)) if want.go_mod != h1 => Err(mismatch(state, db, &format!("{module}@{version}"), what, h1, &want.go_mod)),
        _ => Ok(()),
    }
}

/// Checks a zip's `h1:` against the database before it is stored.
pub(crate) async fn check_zip(state: &Arc<AppState>, module: &ModulePath, version: &Version, h1: &str, what: &str) -> Result<(), ApiError> {
    match expected(state, module, version, what).await? {
        Some((db, want)) if want.zip != h1 => Err(mismatch(state, db, &format!("{module}@{version}"), what, h1, &want.zip)),
        _ => Ok(()),
    }
}

fn mismatch(state: &AppState, db: &SumdbConfig, target: &str, what: &str, got: &str, want: &str) -> ApiError {
    security_event(
        state,
        db,
        "checksum",
        target,
        format!(
            "SECURITY ERROR: checksum mismatch for {what}: upstream's copy hashes to {got} but checksum database {} records {want}; refused, nothing was stored (the upstream copy may have been tampered with)",
            db.name
        ),
    )
}

/// The database's hashes for a version, or `None` when none applies.
async fn expected<'a>(
    state: &'a Arc<AppState>,
    module: &ModulePath,
    version: &Version,
    what: &str,
) -> Result<Option<(&'a SumdbConfig, RecordHashes)>, ApiError> {
    let Some(db) = state.cfg.sumdb.first() else { return Ok(None) };
    if state.upstream.is_private(module) {
        return Ok(None);
    }
    let body = lookup(state, db, module, version).await.map_err(|e| refused(db, what, e))?;
    let parsed = parse_lookup(&body).map_err(|e| ApiError::internal(format!("recorded lookup of {module}@{version}: {e}")))?;
    let hashes = record_hashes(parsed.text, module.as_str(), version.as_str())
        .map_err(|e| ApiError::internal(format!("recorded lookup of {module}@{version}: {e}")))?;
    Ok(Some((db, hashes)))
}

fn refused(db: &SumdbConfig, what: &str, e: ApiError) -> ApiError {
    if e.is_not_found() {
        return ApiError::bad_gateway(format!(
            "{what} cannot be verified: checksum database {} has no record of it ({}); nothing was stored (a private module belongs in upstream.private)",
            db.name, e.message
        ));
    }
    // Fetch failures read "checksum database <name>: …" (security events do not).
    if e.message.starts_with(&format!("checksum database {}: ", db.name)) {
        tracing::warn!(sumdb = %db.name, what, error = %e.message, "checksum database unavailable; fetch refused");
        return ApiError::new(
            e.status,
            format!("{what} cannot be verified, so nothing was stored: checksum database {} is unavailable: {}", db.name, e.message),
        );
    }
    e
}
