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
mod format;
mod sha;

pub use audit::{append_audit, audit_op, read_audit, AuditRecord};
pub use blobs::{
    BlobContent, BlobPin, BlobStats, BlobStore, FileStamp, GcLock, OpenBlob, TempBlob, QUARANTINE_MAX_BYTES, QUARANTINE_MAX_FILES,
};
pub use catalog::{
    Catalog, CatalogOp, LatestRecord, ListRecord, Pending, Plan, SumdbHead, VersionParts, ZipRef, PART_INFO, PART_MOD, PART_ZIP,
};
pub use db::{CatalogEpoch, Db, DbOp, CF_CATALOG, CF_LOCAL, CF_RAFT_LOG, CF_RAFT_META};
pub use error::{Error, Result};
pub use format::{DATA_FORMAT, FORMAT_FILE};
pub use sha::{Sha256, Sha256Writer};

use std::path::{Path, PathBuf};

/// Everything a node keeps on disk under its data directory.
pub struct Store {
    pub catalog: Catalog,
    pub blobs: BlobStore,
    data_dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir`, after checking
    /// its format version (`data_dir/format`, see [`DATA_FORMAT`]): RocksDB in
    /// `data_dir/db`, blobs in `data_dir/blobs`, temp files in `data_dir/tmp`
    /// (emptied here, since a temp file is by definition unfinished work).
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        format::check_or_record(data_dir)?;
        let db = Db::open(&data_dir.join("db"))?;
        let blobs = BlobStore::new(data_dir)?;
        Ok(Store { catalog: Catalog::new(db), blobs, data_dir: data_dir.to_path_buf() })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Bytes this process may still write on the file system holding the
    /// data directory; `None` when that cannot be told.
    pub fn free_bytes(&self) -> Option<u64> {
        rustix::fs::statvfs(&self.data_dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// `Err(reason)` when the data directory has less than
    /// [`MIN_FREE_BYTES`] free: new files are then refused before anything
    /// is written, so the catalog and the raft log always have room, and
    /// taken again by themselves once space is freed.
    pub fn check_space(&self) -> std::result::Result<(), DiskFull> {
        self.blobs.check_space(0)
    }
}

/// Free space a node keeps in its data directory for the catalog and the
/// raft log: a fill is refused below it.
pub const MIN_FREE_BYTES: u64 = 16 << 20;

/// A write refused for lack of disk space in the data directory; its
/// `Display` is the one-line reason a client or a log reader sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskFull {
    pub data_dir: PathBuf,
    /// Bytes free when it was noticed, where known.
    pub free: Option<u64>,
}

impl std::fmt::Display for DiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let free = self.free.map(|b| format!(" ({} KiB free", b >> 10)).unwrap_or_else(|| " (".to_owned());
        write!(
            f,
            "data directory {} is full{free}, {} MiB are kept free for the catalog and log); free space there and the node resumes by itself",
            self.data_dir.display(),
            MIN_FREE_BYTES >> 20
        )
    }
}

impl std::error::Error for DiskFull {}

/// Whether an I/O error means the disk is full (ENOSPC, EDQUOT).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}
