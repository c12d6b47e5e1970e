//! The catalog: module versions with their `.info`, `.mod` and zip address,
//! cached version lists and `@latest` answers.
//!
//! Keys are built from the *escaped* module path and version (case-encoded,
//! so `Sirupsen` and `sirupsen` never collide) joined by NUL, which cannot
//! occur in either, so a prefix scan of one module never sees another:
//!
//! ```text
//! v \0 <module> \0 <version> \0 info|mod|zip   → raw .info / raw .mod / ZipRef (JSON)
//! l \0 <module>                                → ListRecord (JSON)
//! t \0 <module>                                → LatestRecord (JSON)
//! s \0 <db> \0 lookup/<module>@<version>        → a checksum database's lookup answer (raw)
//! s \0 <db> \0 tile/<H>/<L>/<NNN>               → the widest hash tile seen there (raw)
//! s \0 <db> \0 latest                           → SumdbHead (JSON): the newest verified tree head
//! ```
//!
//! A version's `.info`, `.mod` and zip, once recorded, are never replaced
//! (first writer wins): clients have their hashes in go.sum, so a primary
//! that fetches them again after a failover must not swap the bytes. Only
//! a purge removes them.

use std::collections::HashMap;
use std::sync::Arc;

use gomod::{ModulePath, Version};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbOp, CF_CATALOG};
use crate::{Error, Result};

mod records;
pub use records::{CatalogOp, LatestRecord, ListRecord, SumdbHead, VersionParts, ZipRef};

#[derive(Clone)]
pub struct Catalog {
    db: Db,
    /// Serializes [`Catalog::apply`]: reading what is recorded and writing
    /// must not interleave with another write of the same part.
    writes: Arc<Mutex<()>>,
}

/// Catalog writes planned earlier in one batch and not yet in the
/// database, so later operations of the batch see them (`None`: deleted).
#[derive(Debug, Default)]
pub struct Pending(HashMap<Vec<u8>, Option<Vec<u8>>>);

/// What one operation writes, and which parts of a version it offered
/// that the catalog already records with other content (and keeps).
#[derive(Debug, Default)]
pub struct Plan {
    pub ops: Vec<DbOp>,
    /// Parts (`"info"`, `"mod"`, `"zip"`) this operation records.
    pub written: Vec<&'static str>,
    /// Parts left as they were because other content is recorded.
    pub kept: Vec<&'static str>,
}

pub const PART_INFO: &str = "info";
pub const PART_MOD: &str = "mod";
pub const PART_ZIP: &str = "zip";

impl Catalog {
    pub fn new(db: Db) -> Self {
        Catalog { db, writes: Arc::new(Mutex::new(())) }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Applies `op`; returns the parts it offered that were already
    /// recorded with other content and kept.
    pub fn apply(&self, op: &CatalogOp) -> Result<Vec<&'static str>> {
        let _serial = self.writes.lock();
        let plan = self.plan(op, &mut Pending::default())?;
        self.db.write(plan.ops, true)?;
        Ok(plan.kept)
    }

    /// The database writes that `op` consists of, given what the catalog
    /// and the earlier operations of the batch (`pending`, updated here)
    /// hold, so a caller (the raft state machine) can commit them
    /// atomically with its own bookkeeping. Applying an operation twice
    /// equals applying it once.
    pub fn plan(&self, op: &CatalogOp, pending: &mut Pending) -> Result<Plan> {
        let mut plan = Plan::default();
        match op {
            CatalogOp::PutVersion { module, version, parts } => {
                let offered =
                    [(PART_INFO, parts.info.clone()), (PART_MOD, parts.go_mod.clone()), (PART_ZIP, parts.zip.as_ref().map(to_json))];
                for (part, value) in offered {
                    let Some(value) = value else { continue };
                    let key = version_key(module, version, part);
                    match self.recorded(&key, pending)? {
                        None => {
                            pending.0.insert(key.clone(), Some(value.clone()));
                            plan.ops.push(DbOp::Put { cf: CF_CATALOG, key, value });
                            plan.written.push(part);
                        }
                        Some(old) if !same(part, &old, &value) => plan.kept.push(part),
                        Some(_) => {}
                    }
                }
            }
            CatalogOp::PutList { module, list } => plan.ops.push(put(module_key(b'l', module), to_json(list))),
            CatalogOp::PutLatest { module, latest } => plan.ops.push(put(module_key(b't', module), to_json(latest))),
            CatalogOp::PutSumdbLookup { db, key, body } => {
                let key = sumdb_key(db, key);
                if self.recorded(&key, pending)?.is_none() {
                    plan.ops.push(self.pend(pending, key, body.clone()));
                }
            }
            CatalogOp::PutSumdbTile { db, tile, data } => {
                let key = sumdb_key(db, tile);
                if self.recorded(&key, pending)?.is_none_or(|old| old.len() < data.len()) {
                    plan.ops.push(self.pend(pending, key, data.clone()));
                }
            }
            CatalogOp::PutSumdbHead { db, head } => {
                let key = sumdb_key(db, SUMDB_LATEST);
                let old: Option<SumdbHead> = self.recorded(&key, pending)?.and_then(|v| serde_json::from_slice(&v).ok());
                if old.is_none_or(|old| old.size <= head.size) {
                    plan.ops.push(self.pend(pending, key, to_json(head)));
                }
            }
            CatalogOp::Purge { module, version } => {
                for part in [PART_INFO, PART_MOD, PART_ZIP] {
                    let key = version_key(module, version, part);
                    pending.0.insert(key.clone(), None);
                    plan.ops.push(DbOp::Delete { cf: CF_CATALOG, key });
                }
            }
        }
        Ok(plan)
    }

    fn pend(&self, pending: &mut Pending, key: Vec<u8>, value: Vec<u8>) -> DbOp {
        pending.0.insert(key.clone(), Some(value.clone()));
        DbOp::Put { cf: CF_CATALOG, key, value }
    }

    /// A checksum database's recorded lookup answer or hash tile (`key` as
    /// in [`CatalogOp::PutSumdbLookup`] and [`CatalogOp::PutSumdbTile`]).
    pub fn sumdb(&self, db: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.db.get(CF_CATALOG, &sumdb_key(db, key))
    }

    /// The newest verified tree head recorded for a checksum database.
    pub fn sumdb_head(&self, db: &str) -> Result<Option<SumdbHead>> {
        let key = sumdb_key(db, SUMDB_LATEST);
        self.db.get(CF_CATALOG, &key)?.map(|v| from_json(&key, &v)).transpose()
    }

    /// The zip recorded for a version, counting the writes of `pending`.
    pub fn zip_pending(&self, module: &ModulePath, version: &Version, pending: &Pending) -> Result<Option<ZipRef>> {
        let key = version_key(module, version, PART_ZIP);
        self.recorded(&key, pending)?.map(|v| from_json(&key, &v)).transpose()
    }

    fn recorded(&self, key: &[u8], pending: &Pending) -> Result<Option<Vec<u8>>> {
        match pending.0.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.db.get(CF_CATALOG, key),
        }
    }

    /// The catalog's write counts now (see [`CatalogEpoch`]).
    pub fn epoch(&self) -> crate::CatalogEpoch {
        self.db.catalog_epoch()
    }

    pub fn info(&self, module: &ModulePath, version: &Version) -> Result<Option<Vec<u8>>> {
        self.db.get(CF_CATALOG, &version_key(module, version, PART_INFO))
    }

    pub fn go_mod(&self, module: &ModulePath, version: &Version) -> Result<Option<Vec<u8>>> {
        self.db.get(CF_CATALOG, &version_key(module, version, PART_MOD))
    }

    pub fn zip(&self, module: &ModulePath, version: &Version) -> Result<Option<ZipRef>> {
        let key = version_key(module, version, PART_ZIP);
        self.db.get(CF_CATALOG, &key)?.map(|v| from_json(&key, &v)).transpose()
    }

    pub fn list(&self, module: &ModulePath) -> Result<Option<ListRecord>> {
        let key = module_key(b'l', module);
        self.db.get(CF_CATALOG, &key)?.map(|v| from_json(&key, &v)).transpose()
    }

    pub fn latest(&self, module: &ModulePath) -> Result<Option<LatestRecord>> {
        let key = module_key(b't', module);
        self.db.get(CF_CATALOG, &key)?.map(|v| from_json(&key, &v)).transpose()
    }

    /// The versions of `module` the catalog holds anything for, in Go semver
    /// order. Reads only this module's keys (no `.info` or `.mod` body is
    /// copied).
    pub fn versions(&self, module: &ModulePath) -> Result<Vec<Version>> {
        let mut prefix = module_key(b'v', module);
        prefix.push(0);
        let mut out: Vec<Version> = Vec::new();
        let mut last: Vec<u8> = Vec::new();
        self.db.for_each_prefix(CF_CATALOG, &prefix, |key, _| {
            let rest = &key[prefix.len()..];
            let Some(end) = rest.iter().position(|b| *b == 0) else { return Ok(true) };
            if rest[..end] == last[..] {
                return Ok(true);
            }
            last = rest[..end].to_vec();
            let escaped = String::from_utf8_lossy(&rest[..end]);
            let version = Version::from_escaped(&escaped)
                .map_err(|e| Error::Decode { key: String::from_utf8_lossy(key).into_owned(), reason: e.to_string() })?;
            out.push(version);
            Ok(true)
        })?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every version the catalog holds any part of, in key order (escaped
    /// module path, then escaped version), for `flotillactl modules`.
    pub fn all_versions(&self) -> Result<Vec<(ModulePath, Version)>> {
        let mut out: Vec<(ModulePath, Version)> = Vec::new();
        self.db.for_each_prefix(CF_CATALOG, b"v\0", |key, _| {
            let Some((module, version, _)) = split_version_key(key) else { return Ok(true) };
            let key_text = String::from_utf8_lossy(key).into_owned();
            let decode = |reason: String| Error::Decode { key: key_text.clone(), reason };
            let module = ModulePath::from_escaped(&module).map_err(|e| decode(e.to_string()))?;
            let version = Version::from_escaped(&version).map_err(|e| decode(e.to_string()))?;
            if out.last() != Some(&(module.clone(), version.clone())) {
                out.push((module, version));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every zip the catalog references, for anti-entropy and scrub.
    pub fn all_zips(&self) -> Result<Vec<(ModulePath, Version, ZipRef)>> {
        let mut out = Vec::new();
        self.db.for_each_prefix(CF_CATALOG, b"v\0", |key, value| {
            let Some((module, version, part)) = split_version_key(key) else { return Ok(true) };
            if part != PART_ZIP {
                return Ok(true);
            }
            let key_text = String::from_utf8_lossy(key).into_owned();
            let decode = |reason: String| Error::Decode { key: key_text.clone(), reason };
            let module = ModulePath::from_escaped(&module).map_err(|e| decode(e.to_string()))?;
            let version = Version::from_escaped(&version).map_err(|e| decode(e.to_string()))?;
            out.push((module, version, from_json(key, value)?));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `visit` with every zip reference, in key order, one at a time
    /// (no module path or version is decoded, no `.info`/`.mod` body
    /// copied); `visit` returns `false` to stop.
    pub fn for_each_zip(&self, mut visit: impl FnMut(&ZipRef) -> bool) -> Result<()> {
        self.db.for_each_prefix(CF_CATALOG, b"v\0", |key, value| {
            if !key.ends_with(ZIP_SUFFIX) {
                return Ok(true);
            }
            Ok(visit(&from_json::<ZipRef>(key, value)?))
        })
    }
}

fn put(key: Vec<u8>, value: Vec<u8>) -> DbOp {
    DbOp::Put { cf: CF_CATALOG, key, value }
}

/// Whether two recorded values of `part` say the same (zip references are
/// compared decoded, so an encoding change is not a different zip).
fn same(part: &str, a: &[u8], b: &[u8]) -> bool {
    if part == PART_ZIP {
        if let (Ok(a), Ok(b)) = (serde_json::from_slice::<ZipRef>(a), serde_json::from_slice::<ZipRef>(b)) {
            return a == b;
        }
    }
    a == b
}

const SUMDB_LATEST: &str = "latest";

fn sumdb_key(db: &str, key: &str) -> Vec<u8> {
    let mut out = vec![b's', 0];
    out.extend_from_slice(db.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

fn module_key(tag: u8, module: &ModulePath) -> Vec<u8> {
    let mut key = vec![tag, 0];
    key.extend_from_slice(module.escaped().as_bytes());
    key
}

fn version_key(module: &ModulePath, version: &Version, part: &str) -> Vec<u8> {
    let mut key = module_key(b'v', module);
    key.push(0);
    key.extend_from_slice(version.escaped().as_bytes());
    key.push(0);
    key.extend_from_slice(part.as_bytes());
    key
}

/// How a version's zip key ends (`v\0<module>\0<version>\0zip`).
const ZIP_SUFFIX: &[u8] = b"\0zip";

fn split_version_key(key: &[u8]) -> Option<(String, String, String)> {
    let text = std::str::from_utf8(key.strip_prefix(b"v\0")?).ok()?;
    let mut fields = text.split('\0');
    let (module, version, part) = (fields.next()?, fields.next()?, fields.next()?);
    Some((module.to_string(), version.to_string(), part.to_string()))
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn from_json<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode { key: String::from_utf8_lossy(key).into_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests;
