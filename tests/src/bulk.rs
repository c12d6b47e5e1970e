//! A large catalog written straight into the data directories of stopped
//! cluster members, for tests that need hundreds of thousands of versions
//! without fetching each one: `count` versions spread over modules, each
//! with an `.info`, a `.mod` and a zip reference, placement listing every
//! member for every zip, and on each member a blob file for every zip (hard
//! links to a few small files: the blob ids are made up, so nothing may read
//! them — turn scrub off with `FLOTILLA_REPLICATION__SCRUB_RATE=0`).
//!
//! Every member gets the same catalog pairs, as raft would have left them;
//! the placement keys (`0xFF blob/<sha256 hex>/<u64be node id>`) are the
//! raft state machine's, written here by hand.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use gomod::{ModulePath, Version};
use store::{Catalog, CatalogOp, Db, DbOp, ListRecord, Pending, VersionParts, ZipRef, CF_CATALOG};

/// The shape of a bulk catalog.
#[derive(Clone, Copy, Debug)]
pub struct BulkCatalog {
    pub modules: usize,
    pub versions_per_module: usize,
    /// The size every zip reference claims.
    pub zip_size: u64,
}

impl BulkCatalog {
    pub fn count(&self) -> usize {
        self.modules * self.versions_per_module
    }

    pub fn module(&self, m: usize) -> String {
        format!("example.com/scale/m{m}")
    }

    pub fn version(&self, v: usize) -> String {
        format!("v1.0.{v}")
    }

    /// The made-up blob id of version `i` (of all): 16 blob directories in
    /// all, so the files cost little besides their names.
    pub fn sha(i: usize) -> String {
        format!("abc{:x}{:060x}", i % 16, i)
    }

    /// Writes the catalog into `data_dir` (a stopped node's), placement for
    /// every member in `members`, and the blob files.
    pub fn write(&self, data_dir: &Path, members: &[u64]) {
        let db = Db::open(&data_dir.join("db")).expect("open the node's RocksDB");
        let catalog = Catalog::new(db.clone());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let blobs = data_dir.join("blobs");
        for d in 0..16 {
            std::fs::create_dir_all(blobs.join("ab").join(format!("c{d:x}"))).expect("create blob dir");
        }
        let mut ops = Vec::new();
        let mut pending = Pending::default();
        for m in 0..self.modules {
            let module = ModulePath::new(&self.module(m)).expect("module path");
            // A fresh (empty) upstream list, so `@v/list` is a hit that
            // merges the versions held.
            let list = CatalogOp::PutList { module: module.clone(), list: ListRecord { versions: Vec::new(), fetched_at_ms: now } };
            ops.extend(catalog.plan(&list, &mut pending).expect("plan list").ops);
            for v in 0..self.versions_per_module {
                let i = m * self.versions_per_module + v;
                let version = Version::new(&self.version(v)).expect("version");
                let sha = Self::sha(i);
                let info = format!("{{\"Version\":\"{version}\",\"Time\":\"2024-01-01T00:00:00Z\"}}");
                let go_mod = format!(
                    "module {module}\n\ngo 1.21\n\nrequire (\n\texample.com/dep/one v1.2.3\n\texample.com/dep/two v0.4.{v}\n\tgolang.org/x/text v0.14.0\n)\n"
                );
                let zip = ZipRef { sha256: sha.parse().expect("sha"), size: self.zip_size, h1: format!("h1:bulk{i}="), fetched_at_ms: now };
                let op = CatalogOp::PutVersion {
                    module: module.clone(),
                    version,
                    parts: VersionParts { info: Some(info.into_bytes()), go_mod: Some(go_mod.into_bytes()), zip: Some(zip) },
                };
                ops.extend(catalog.plan(&op, &mut pending).expect("plan version").ops);
                for node in members {
                    let key = [b"\xFFblob/".as_slice(), sha.as_bytes(), b"/", &node.to_be_bytes()].concat();
                    ops.push(DbOp::Put { cf: CF_CATALOG, key, value: Vec::new() });
                }
                let path = blobs.join(&sha[0..2]).join(&sha[2..4]).join(&sha);
                // A file has at most 65,000 names on ext4: one source per 50,000.
                let source = data_dir.join(format!("bulk-blob-{}", i / 50_000));
                if !source.exists() {
                    std::fs::write(&source, b"made-up blob content").expect("write a bulk blob file");
                }
                std::fs::hard_link(&source, &path).expect("link a blob file");
                if ops.len() >= 20_000 {
                    db.write(std::mem::take(&mut ops), false).expect("write catalog batch");
                    pending = Pending::default();
                }
            }
        }
        db.write(ops, true).expect("write catalog batch");
    }
}
