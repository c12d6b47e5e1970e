//! What the admin API (`flotillactl verify --sumdb`, `flotillactl doctor`)
//! asks of the checksum databases, on the primary: re-checking the cached
//! versions against the database, and whether each database answers with a
//! tree head that verifies.

use std::sync::Arc;

use gomod::sumdb::{parse_lookup, record_hashes};
use gomod::{ModulePath, Version};

use super::log::{accept_head, fetch, lookup, security_event};
use super::SumdbConfig;
use crate::{ApiError, AppState};

/// How one cached version compares with the checksum database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SumdbCheck {
    /// Its cached go.mod and zip (those cached) hash as the database records.
    Match,
    /// A private module (`upstream.private`): never looked up.
    Private,
    /// The catalog holds neither its go.mod nor its zip.
    NothingToCheck,
    /// A cached file hashes otherwise than the database records: `file` is
    /// `go.mod` or `zip`.
    Mismatch { file: &'static str, catalog: String, database: String },
    /// The database has no record of the version.
    Unknown(String),
    /// It could not be checked now (the database unreachable…).
    Failed(String),
}

/// The database versions are verified against (the first `[[sumdb]]`).
pub fn verifying_database(state: &AppState) -> Option<&SumdbConfig> {
    state.cfg.sumdb.first()
}

/// Compares the cached go.mod and zip `h1:` of `module@version` with the
/// record of the verifying database (looked up, proven and recorded as on
/// fetch when the catalog has no recorded lookup). Each mismatch is a
/// security event. The primary's work: it fetches from the database.
pub async fn check_cached(state: &Arc<AppState>, module: &ModulePath, version: &Version) -> Vec<SumdbCheck> {
    let Some(db) = verifying_database(state) else { return vec![SumdbCheck::Failed("no checksum database is configured".into())] };
    if state.upstream.is_private(module) {
        return vec![SumdbCheck::Private];
    }
    let cached = (|| -> Result<_, store::Error> {
        let go_mod = state.store.catalog.go_mod(module, version)?.map(|m| gomod::h1_go_mod(&m));
        let zip = state.store.catalog.zip(module, version)?.map(|z| z.h1);
        Ok((go_mod, zip))
    })();
    let (go_mod, zip) = match cached {
        Ok((None, None)) => return vec![SumdbCheck::NothingToCheck],
        Ok(hashes) => hashes,
        Err(e) => return vec![SumdbCheck::Failed(format!("reading the catalog: {e}"))],
    };
    let body = match lookup(state, db, module, version).await {
        Ok(body) => body,
        Err(e) if e.is_not_found() => return vec![SumdbCheck::Unknown(e.message)],
        Err(e) => return vec![SumdbCheck::Failed(e.message)],
    };
    let want = match parse_lookup(&body).and_then(|p| record_hashes(p.text, module.as_str(), version.as_str())) {
        Ok(want) => want,
        Err(e) => return vec![SumdbCheck::Failed(format!("recorded lookup of {module}@{version}: {e}"))],
    };
    let mut out = Vec::new();
    for (file, got, want) in [("go.mod", go_mod, want.go_mod), ("zip", zip, want.zip)] {
        let Some(got) = got.filter(|got| *got != want) else { continue };
        security_event(
            state,
            db,
            "checksum",
            &format!("{module}@{version}"),
            format!(
                "SECURITY ERROR: checksum mismatch for the cached {file} of {module}@{version}: it hashes to {got} but checksum database {} records {want} (it was stored before the mirror verified against the database, or the catalog was altered); purge it with `flotillactl purge {module}@{version}`",
                db.name
            ),
        );
        out.push(SumdbCheck::Mismatch { file, catalog: got, database: want });
    }
    if out.is_empty() {
        out.push(SumdbCheck::Match);
    }
    out
}

/// A configured database as `flotillactl doctor` sees it.
#[derive(Clone, Debug)]
pub struct SumdbHealth {
    pub name: String,
    pub url: String,
    /// `Err`: why its tree head could not be fetched or verified now.
    pub reached: Result<(), ApiError>,
    /// The newest verified tree head the catalog records: its size and when
    /// it was fetched (ms since the Unix epoch).
    pub verified: Option<(i64, u64)>,
}

/// Fetches each configured database's tree head now and verifies it
/// (signature, consistency with the recorded one, which a newer one
/// replaces). The primary's work.
pub async fn health(state: &Arc<AppState>) -> Vec<SumdbHealth> {
    let mut out = Vec::new();
    for db in &state.cfg.sumdb {
        let reached = match fetch(state, db, "latest").await {
            Ok(signed) => accept_head(state, db, &signed, true).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let verified = match state.store.catalog.sumdb_head(&db.name) {
            Ok(head) => head.map(|h| (h.size, h.fetched_at_ms)),
            Err(e) => {
                tracing::warn!(sumdb = %db.name, error = %e, "cannot read the recorded tree head");
                None
            }
        };
        out.push(SumdbHealth { name: db.name.clone(), url: db.url.clone(), reached, verified });
    }
    out
}
