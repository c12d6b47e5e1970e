//! Small zips kept in memory after they were read and verified, so a hot
//! zip is served without a trip to a blocking thread and three syscalls.
//!
//! Keyed by sha256, so a cached copy is always the right content for any
//! catalog entry that names it. Each copy remembers the stamp of the file it
//! was read from: a hit costs one `stat`, and a file that changed on disk
//! (bit rot, an operator's edit) is read again, which verifies it and
//! quarantines it if it is corrupt.

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use store::{BlobStore, FileStamp, Sha256};

/// Zips larger than this are streamed from disk, never held whole.
pub const WHOLE_READ_MAX: u64 = 1 << 20;

pub struct HotZips {
    cache: Option<Cache<Sha256, (Bytes, FileStamp), ByLength>>,
    max_item: u64,
}

#[derive(Clone)]
pub struct ByLength;

impl Weighter<Sha256, (Bytes, FileStamp)> for ByLength {
    fn weight(&self, _key: &Sha256, value: &(Bytes, FileStamp)) -> u64 {
        value.0.len() as u64 + 64
    }
}

impl HotZips {
    /// A cache of about `capacity` bytes; 0 turns it off. No single zip
    /// takes more than an eighth of it.
    pub fn new(capacity: u64) -> Self {
        if capacity == 0 {
            return HotZips { cache: None, max_item: 0 };
        }
        // quick_cache wants an estimate of the item count for its tables.
        let estimated_items = (capacity / (32 << 10)).clamp(16, 1 << 20) as usize;
        let cache = Cache::with_weighter(estimated_items, capacity, ByLength);
        HotZips { cache: Some(cache), max_item: (capacity / 8).min(WHOLE_READ_MAX) }
    }

    /// The cached content of `sha`, if its file has not changed since it was read.
    pub fn get(&self, blobs: &BlobStore, sha: &Sha256) -> Option<Bytes> {
        let cache = self.cache.as_ref()?;
        let (bytes, stamp) = cache.get(sha)?;
        if blobs.stamp(sha) == Some(stamp) {
            return Some(bytes);
        }
        cache.remove(sha);
        None
    }

    pub fn insert(&self, sha: Sha256, bytes: Bytes, stamp: FileStamp) {
        if let Some(cache) = &self.cache {
            if bytes.len() as u64 <= self.max_item {
                cache.insert(sha, (bytes, stamp));
            }
        }
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}
