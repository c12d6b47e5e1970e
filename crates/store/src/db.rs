use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use crate::Result;

/// Column families. `catalog` is the replicated state; `local` is what only
/// this node knows (never part of a snapshot); `raft_log` and `raft_meta`
/// hold the consensus log and vote.
pub const CF_CATALOG: &str = "catalog";
pub const CF_LOCAL: &str = "local";
pub const CF_RAFT_LOG: &str = "raft_log";
pub const CF_RAFT_META: &str = "raft_meta";
const CFS: [&str; 4] = [CF_CATALOG, CF_LOCAL, CF_RAFT_LOG, CF_RAFT_META];

/// A key and its value as RocksDB returns them.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

/// One change in an atomic [`Db::write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbOp {
    Put {
        cf: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: &'static str,
        key: Vec<u8>,
    },
    /// Deletes keys in `[from, to)`.
    DeleteRange {
        cf: &'static str,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

/// The node's RocksDB instance.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DB>,
    path: Arc<Path>,
    changes: Arc<CatalogChanges>,
}

/// Counts of writes to the `catalog` family, for caches of what it holds:
/// a value read after taking [`CatalogEpoch`] is current while the epoch
/// is unchanged. Each count moves after its write is visible.
#[derive(Default)]
struct CatalogChanges {
    /// Every write batch that touched the catalog.
    writes: AtomicU64,
    /// Batches that deleted catalog keys (purges, snapshot installs).
    removals: AtomicU64,
}

/// The catalog's write counts at one moment ([`Db::catalog_epoch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatalogEpoch {
    /// Changes with any catalog write (lists, `@latest`, new versions).
    pub writes: u64,
    /// Changes only when catalog keys are deleted: what was recorded once
    /// (a version's `.info`, `.mod`, zip) is never rewritten, only removed.
    pub removals: u64,
}

impl Db {
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let inner = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Db { inner: Arc::new(inner), path: path.into(), changes: Arc::default() })
    }

    /// The directory RocksDB lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key/value of `cf` in key order, as of this call (one RocksDB
    /// iterator sees one point in time), without loading them all at once.
    pub fn iter_all(&self, cf: &str) -> impl Iterator<Item = Result<KeyValue>> + '_ {
        self.inner.iterator_cf(self.cf(cf), IteratorMode::Start).map(|item| item.map_err(Into::into))
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.get_cf(self.cf(cf), key)?)
    }

    /// Every key/value whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.inner.iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// Calls `visit` with every key/value whose key starts with `prefix`, in
    /// key order, without copying them or holding more than one at a time;
    /// `visit` returns `false` to stop early.
    pub fn for_each_prefix(&self, cf: &str, prefix: &[u8], mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        for item in self.inner.iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) || !visit(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Key/values with `from <= key < to` (`to = None`: to the end), in key order.
    pub fn scan_range(&self, cf: &str, from: &[u8], to: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_range_limited(cf, from, to, usize::MAX)
    }

    /// [`Db::scan_range`], ending after the pair whose value brings the
    /// values read to `max_bytes` or more (so at least one pair when any).
    pub fn scan_range_limited(&self, cf: &str, from: &[u8], to: Option<&[u8]>, max_bytes: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self.inner.iterator_cf(self.cf(cf), IteratorMode::From(from, Direction::Forward)) {
            let (k, v) = item?;
            if to.is_some_and(|to| &*k >= to) {
                break;
            }
            bytes = bytes.saturating_add(v.len());
            out.push((k.to_vec(), v.to_vec()));
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// The last key/value of a column family.
    pub fn last(&self, cf: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        match self.inner.iterator_cf(self.cf(cf), IteratorMode::End).next() {
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((k.to_vec(), v.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Applies `ops` atomically; with `sync` the write is on disk when this returns.
    pub fn write(&self, ops: Vec<DbOp>, sync: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        let (mut writes, mut removals) = (false, false);
        for op in &ops {
            match op {
                DbOp::Put { cf, .. } => writes |= *cf == CF_CATALOG,
                DbOp::Delete { cf, .. } | DbOp::DeleteRange { cf, .. } => {
                    writes |= *cf == CF_CATALOG;
                    removals |= *cf == CF_CATALOG;
                }
            }
        }
        for op in ops {
            match op {
                DbOp::Put { cf, key, value } => batch.put_cf(self.cf(cf), key, value),
                DbOp::Delete { cf, key } => batch.delete_cf(self.cf(cf), key),
                DbOp::DeleteRange { cf, from, to } => batch.delete_range_cf(self.cf(cf), from, to),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        let written = self.inner.write_opt(batch, &wo);
        // Counted even if the write failed: it may have been partly applied
        // as far as a cache can tell.
        if writes {
            self.changes.writes.fetch_add(1, Ordering::Release);
        }
        if removals {
            self.changes.removals.fetch_add(1, Ordering::Release);
        }
        Ok(written?)
    }

    /// The catalog's write counts now: take them before reading what a
    /// cache will keep.
    pub fn catalog_epoch(&self) -> CatalogEpoch {
        CatalogEpoch { writes: self.changes.writes.load(Ordering::Acquire), removals: self.changes.removals.load(Ordering::Acquire) }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // The families are created at open from the fixed CFS list, so a
        // missing one is a programming error, not a runtime condition.
        self.inner.cf_handle(name).unwrap_or_else(|| panic!("column family {name} not opened"))
    }
}
