//! Flotilla's storage: the catalog (which module versions exist and their
//! metadata) in RocksDB, and module zips as content-addressed blob files.
//!
//! The catalog is changed only through [`CatalogOp`]s so that the same
//! operations can later be applied by the raft state machine on every node.

mod audit;
mod blobs;
mod catalog;
mod db;
mod error;
mod sha;

pub use audit::{append_audit, audit_op, read_audit, AuditRecord};
pub use blobs::{
    BlobContent, BlobPin, BlobStats, BlobStore, FileStamp, GcLock, OpenBlob, TempBlob, QUARANTINE_MAX_BYTES, QUARANTINE_MAX_FILES,
};
pub use catalog::{
    Catalog, CatalogOp, LatestRecord, ListRecord, Pending, Plan, SumdbHead, VersionParts, ZipRef, PART_INFO, PART_MOD, PART_ZIP,
};
pub use db::{Db, DbOp, CF_CATALOG, CF_LOCAL, CF_RAFT_LOG, CF_RAFT_META};
pub use error::{Error, Result};
pub use sha::{Sha256, Sha256Writer};

use std::path::{Path, PathBuf};

/// Everything a node keeps on disk under its data directory.
pub struct Store {
    pub catalog: Catalog,
    pub blobs: BlobStore,
    data_dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir`: RocksDB in
    /// `data_dir/db`, blobs in `data_dir/blobs`, temp files in `data_dir/tmp`
    /// (emptied here, since a temp file is by definition unfinished work).
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let db = Db::open(&data_dir.join("db"))?;
        let blobs = BlobStore::new(data_dir)?;
        Ok(Store { catalog: Catalog::new(db), blobs, data_dir: data_dir.to_path_buf() })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}
