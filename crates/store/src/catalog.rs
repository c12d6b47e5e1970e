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
use crate::{Error, Result, Sha256};

/// Where a version's zip lives and what it hashes to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ZipRef {
    /// Serialised as hex, as always.
    pub sha256: Sha256,
    pub size: u64,
    /// Go's `h1:` dirhash of the zip, as in go.sum.
    pub h1: String,
    /// When the primary fetched it from upstream, ms since the Unix epoch;
    /// 0 (absent from the record) for zips recorded before this was kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fetched_at_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The same zip is the same content: when a primary fetched it does not
/// make it another (a second writer of the same zip keeps the first one's
/// record, fetch time included).
impl PartialEq for ZipRef {
    fn eq(&self, other: &Self) -> bool {
        (&self.sha256, self.size, &self.h1) == (&other.sha256, other.size, &other.h1)
    }
}

impl Eq for ZipRef {}

/// A cached `@v/list` answer from upstream and when it was fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRecord {
    pub versions: Vec<String>,
    pub fetched_at_ms: u64,
}

/// A cached `@latest` answer from upstream and when it was fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestRecord {
    pub info: String,
    pub fetched_at_ms: u64,
}

/// The newest tree head of a checksum database that the primary verified
/// (signature, and consistency with the one recorded before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SumdbHead {
    /// The signed note as the database sent it.
    pub note: String,
    /// The tree size it signs.
    pub size: i64,
    pub fetched_at_ms: u64,
}

/// The parts of one version that an operation sets; `None` leaves a part as it is.
/// The parts of a version one catalog write records. In raft entries (JSON)
/// the `.info` and `.mod` bytes are base64 strings; arrays of numbers (the
/// first encoding) are still read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionParts {
    #[serde(default, with = "base64_bytes")]
    pub info: Option<Vec<u8>>,
    #[serde(default, with = "base64_bytes")]
    pub go_mod: Option<Vec<u8>>,
    pub zip: Option<ZipRef>,
}

mod base64_vec {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Numbers(Vec<u8>),
        }
        Option::<Repr>::deserialize(d)?
            .map(|repr| match repr {
                Repr::Text(text) => STANDARD.decode(text).map_err(serde::de::Error::custom),
                Repr::Numbers(bytes) => Ok(bytes),
            })
            .transpose()
    }
}

/// A change to the catalog. These are the entries a replicated log carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogOp {
    PutVersion {
        module: ModulePath,
        version: Version,
        parts: VersionParts,
    },
    PutList {
        module: ModulePath,
        list: ListRecord,
    },
    PutLatest {
        module: ModulePath,
        latest: LatestRecord,
    },
    Purge {
        module: ModulePath,
        version: Version,
    },
    /// A checksum database's lookup answer for `key` (`lookup/<module>@<version>`,
    /// escaped), verified by the primary. Never replaced.
    PutSumdbLookup {
        db: String,
        key: String,
        #[serde(with = "base64_vec")]
        body: Vec<u8>,
    },
    /// A hash tile (`tile/<H>/<L>/<NNN>`, no `.p/W`), authenticated by the
    /// primary. Kept when wider than the one recorded: a narrower tile is a
    /// prefix of a wider one.
    PutSumdbTile {
        db: String,
        tile: String,
        #[serde(with = "base64_vec")]
        data: Vec<u8>,
    },
    /// A verified tree head; kept when it signs at least as many records as
    /// the one recorded.
    PutSumdbHead {
        db: String,
        head: SumdbHead,
    },
}

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
mod tests {
    use super::*;

    fn catalog(dir: &tempfile::TempDir) -> Catalog {
        Catalog::new(Db::open(&dir.path().join("db")).unwrap())
    }

    fn put_version(info: &str, go_mod: &str, sha: char) -> CatalogOp {
        let zip = ZipRef { sha256: sha.to_string().repeat(64).parse().unwrap(), size: 1, h1: format!("h1:{sha}"), fetched_at_ms: 0 };
        let parts = VersionParts { info: Some(info.into()), go_mod: Some(go_mod.into()), zip: Some(zip) };
        CatalogOp::PutVersion { module: ModulePath::new("example.com/m").unwrap(), version: Version::new("v1.0.0").unwrap(), parts }
    }

    #[test]
    fn the_first_recorded_parts_of_a_version_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cat = catalog(&dir);
        let (m, v) = (ModulePath::new("example.com/m").unwrap(), Version::new("v1.0.0").unwrap());
        assert_eq!(cat.apply(&put_version("first", "module a\n", 'a')).unwrap(), Vec::<&str>::new());
        assert_eq!(cat.apply(&put_version("first", "module a\n", 'a')).unwrap(), Vec::<&str>::new(), "the same again is no conflict");
        assert_eq!(cat.apply(&put_version("second", "module b\n", 'b')).unwrap(), ["info", "mod", "zip"]);
        assert_eq!(cat.info(&m, &v).unwrap().as_deref(), Some(&b"first"[..]));
        assert_eq!(cat.go_mod(&m, &v).unwrap().as_deref(), Some(&b"module a\n"[..]));
        assert_eq!(cat.zip(&m, &v).unwrap().map(|z| z.h1), Some("h1:a".to_string()));

        cat.apply(&CatalogOp::Purge { module: m.clone(), version: v.clone() }).unwrap();
        assert_eq!(cat.apply(&put_version("after purge", "module c\n", 'c')).unwrap(), Vec::<&str>::new());
        assert_eq!(cat.info(&m, &v).unwrap().as_deref(), Some(&b"after purge"[..]));
    }

    #[test]
    fn the_same_zip_fetched_again_keeps_its_first_fetch_time_and_old_records_read_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let cat = catalog(&dir);
        let (m, v) = (ModulePath::new("example.com/m").unwrap(), Version::new("v1.0.0").unwrap());
        let put = |at: u64| {
            let zip = ZipRef { sha256: "a".repeat(64).parse().unwrap(), size: 1, h1: "h1:a".into(), fetched_at_ms: at };
            let parts = VersionParts { zip: Some(zip), ..Default::default() };
            CatalogOp::PutVersion { module: m.clone(), version: v.clone(), parts }
        };
        assert_eq!(cat.apply(&put(1000)).unwrap(), Vec::<&str>::new());
        assert_eq!(cat.apply(&put(2000)).unwrap(), Vec::<&str>::new(), "the same zip fetched later is no conflict");
        assert_eq!(cat.zip(&m, &v).unwrap().map(|z| z.fetched_at_ms), Some(1000), "first writer wins");

        let old = format!(r#"{{"sha256":"{}","size":1,"h1":"h1:x"}}"#, "ab".repeat(32));
        let old: ZipRef = serde_json::from_str(&old).unwrap();
        assert_eq!(old.fetched_at_ms, 0);
        assert!(!serde_json::to_string(&old).unwrap().contains("fetched_at_ms"), "unknown stays absent");
    }

    #[test]
    fn within_one_batch_the_first_write_of_a_part_wins_too() {
        let dir = tempfile::tempdir().unwrap();
        let cat = catalog(&dir);
        let mut pending = Pending::default();
        let first = cat.plan(&put_version("first", "module a\n", 'a'), &mut pending).unwrap();
        let second = cat.plan(&put_version("second", "module b\n", 'b'), &mut pending).unwrap();
        assert_eq!((first.written.len(), first.kept.len()), (3, 0));
        assert!(second.ops.is_empty(), "{:?}", second.ops);
        assert_eq!(second.kept, ["info", "mod", "zip"]);
        let (m, v) = (ModulePath::new("example.com/m").unwrap(), Version::new("v1.0.0").unwrap());
        assert_eq!(cat.zip_pending(&m, &v, &pending).unwrap().map(|z| z.h1), Some("h1:a".to_string()));

        let purge = cat.plan(&CatalogOp::Purge { module: m.clone(), version: v.clone() }, &mut pending).unwrap();
        assert_eq!(cat.zip_pending(&m, &v, &pending).unwrap(), None);
        let third = cat.plan(&put_version("third", "module c\n", 'c'), &mut pending).unwrap();
        assert_eq!(third.written, ["info", "mod", "zip"]);
        cat.db().write([first.ops, purge.ops, third.ops].concat(), true).unwrap();
        assert_eq!(cat.info(&m, &v).unwrap().as_deref(), Some(&b"third"[..]));
    }

    #[test]
    fn sumdb_lookups_stay_tiles_widen_and_heads_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let cat = catalog(&dir);
        let lookup = |body: &str| CatalogOp::PutSumdbLookup { db: "d".into(), key: "lookup/m@v1.0.0".into(), body: body.into() };
        cat.apply(&lookup("first")).unwrap();
        cat.apply(&lookup("second")).unwrap();
        assert_eq!(cat.sumdb("d", "lookup/m@v1.0.0").unwrap().as_deref(), Some(&b"first"[..]));
        assert_eq!(cat.sumdb("other", "lookup/m@v1.0.0").unwrap(), None);

        let tile = |data: &[u8]| CatalogOp::PutSumdbTile { db: "d".into(), tile: "tile/8/0/000".into(), data: data.to_vec() };
        for data in [&[1u8; 64][..], &[1u8; 96][..], &[1u8; 32][..]] {
            cat.apply(&tile(data)).unwrap();
        }
        assert_eq!(cat.sumdb("d", "tile/8/0/000").unwrap().map(|d| d.len()), Some(96));

        let head = |size: i64, at: u64| CatalogOp::PutSumdbHead {
            db: "d".into(),
            head: SumdbHead { note: format!("tree {size}"), size, fetched_at_ms: at },
        };
        for (size, at) in [(5, 1), (9, 2), (7, 3), (9, 4)] {
            cat.apply(&head(size, at)).unwrap();
        }
        let got = cat.sumdb_head("d").unwrap().unwrap();
        assert_eq!((got.size, got.fetched_at_ms), (9, 4));
        let json = serde_json::to_string(&tile(b"ab")).unwrap();
        assert!(json.contains("\"data\":\"YWI=\""), "{json}");
        assert_eq!(serde_json::from_str::<CatalogOp>(&json).unwrap(), tile(b"ab"));
    }

    #[test]
    fn version_parts_carry_bytes_as_base64_and_still_read_number_arrays() {
        let parts = VersionParts { info: Some(b"{\"Version\":\"v1.0.0\"}".to_vec()), go_mod: Some(vec![0, 255, 10]), zip: None };
        let json = serde_json::to_string(&parts).unwrap();
        assert!(json.contains("\"info\":\"eyJWZXJzaW9uIjoidjEuMC4wIn0=\""), "{json}");
        assert_eq!(serde_json::from_str::<VersionParts>(&json).unwrap(), parts);
        let old = r#"{"info":[123,125],"go_mod":null,"zip":null}"#;
        let read: VersionParts = serde_json::from_str(old).unwrap();
        assert_eq!((read.info, read.go_mod), (Some(b"{}".to_vec()), None));
        assert!(serde_json::from_str::<VersionParts>(r#"{"info":"not base64!","zip":null}"#).is_err());
    }
}
