//! A `.mod` is kept forever, so before it is: it must be a go.mod (not a
//! captive portal's HTML page answered with `200`), and it must equal the
//! go.mod inside the version's zip, whichever of the two arrives first.
//!
//! `+incompatible` versions are left out of the comparison: upstream
//! synthesises their `.mod` (`module <path>`) whatever their zip holds.

use std::io::BufReader;

use gomod::{ModulePath, Version};

use crate::{ApiError, AppState};

/// Refuses a `.mod` that is not a go.mod with a `module` directive. The
/// path it declares may differ from the requested one (forks used through
/// `replace` keep their original path).
pub fn check_is_go_mod(body: &[u8], what: &str) -> Result<(), ApiError> {
    gomod::go_mod_module_path(body).map(|_| ()).map_err(|e| {
        tracing::warn!(what, error = %e, "upstream .mod refused; nothing stored");
        ApiError::bad_gateway(format!("upstream sent an unusable {what}, nothing was stored: {e}"))
    })
}

/// Refuses a `.mod` that differs from the go.mod of the zip already
/// recorded for the version, when this node holds that zip.
pub async fn check_matches_zip(state: &AppState, module: &ModulePath, version: &Version, body: &[u8], what: &str) -> Result<(), ApiError> {
    if version.is_incompatible() {
        return Ok(());
    }
    let Some(zip) = state.store.catalog.zip(module, version)? else { return Ok(()) };
    let sha = zip.sha256;
    let (blobs, m, v, limit) = (state.store.blobs.clone(), module.clone(), version.clone(), state.cfg.zip_limits.max_go_mod);
    let read = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, ReadError> {
        let Some(blob) = blobs.open(&sha)? else { return Ok(None) };
        Ok(gomod::zip_go_mod(BufReader::new(blob.file), &m, &v, limit)?)
    })
    .await
    .map_err(|e| ApiError::internal(format!("go.mod read task failed: {e}")))?;
    match read {
        Ok(Some(inside)) if inside != body => Err(mismatch(format!(
            "upstream {what} differs from the go.mod inside the zip this mirror recorded for that version; refusing it, nothing was stored"
        ))),
        Ok(_) => Ok(()),
        Err(e) => {
            // The zip is checked again when served; the .mod is still a go.mod.
            tracing::warn!(what, error = %e, "could not read the recorded zip's go.mod to compare the .mod with");
            Ok(())
        }
    }
}

/// Why the recorded zip's go.mod could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Zip(#[from] gomod::Error),
}

/// Refuses a zip whose go.mod differs from the `.mod` already recorded.
pub fn check_zip_matches_mod(
    state: &AppState,
    module: &ModulePath,
    version: &Version,
    zip_go_mod: Option<&[u8]>,
    what: &str,
) -> Result<(), ApiError> {
    let Some(inside) = zip_go_mod.filter(|_| !version.is_incompatible()) else { return Ok(()) };
    match state.store.catalog.go_mod(module, version)? {
        Some(recorded) if recorded != inside => Err(mismatch(format!(
            "the go.mod inside upstream zip {what} differs from the .mod this mirror recorded for that version; refusing the zip, nothing was stored"
        ))),
        _ => Ok(()),
    }
}

fn mismatch(message: String) -> ApiError {
    tracing::error!(%message, "upstream go.mod differs from what this mirror recorded; refused");
    ApiError::bad_gateway(message)
}
