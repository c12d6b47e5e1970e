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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use store::{BlobContent, BlobStore, Sha256};

    use super::{HotZips, WHOLE_READ_MAX};

    fn stored(blobs: &BlobStore, content: &[u8]) -> Sha256 {
        let sha = Sha256::of(content);
        let mut temp = blobs.temp().expect("temp blob");
        temp.file().write_all(content).expect("write temp blob");
        blobs.commit(temp, &sha).expect("commit blob");
        sha
    }

    fn read_and_keep(hot: &HotZips, blobs: &BlobStore, sha: &Sha256) {
        match blobs.read(sha, WHOLE_READ_MAX).expect("read blob") {
            Some(BlobContent::Whole { bytes, stamp }) => hot.insert(*sha, bytes.into(), stamp),
            _ => panic!("a small blob is read whole"),
        }
    }

    #[test]
    fn a_kept_zip_is_served_until_its_file_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobStore::new(dir.path()).expect("blob store");
        let hot = HotZips::new(1 << 20);
        let sha = stored(&blobs, b"a small module zip");
        assert!(hot.get(&blobs, &sha).is_none());
        read_and_keep(&hot, &blobs, &sha);
        assert_eq!(hot.get(&blobs, &sha).as_deref(), Some(&b"a small module zip"[..]));

        // Bit rot on disk changes the file's stamp: the copy is dropped, so
        // the next read goes to the file and finds the corruption.
        let path = blobs.path_of(&sha);
        std::fs::write(&path, b"a small module zap").expect("rewrite blob");
        assert!(hot.get(&blobs, &sha).is_none());
        assert!(hot.get(&blobs, &sha).is_none(), "the stale copy stays dropped");
    }

    #[test]
    fn zips_over_an_eighth_of_the_memory_and_a_zero_size_cache_keep_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobStore::new(dir.path()).expect("blob store");
        let sha = stored(&blobs, &[7u8; 200]);
        let small = HotZips::new(1024);
        read_and_keep(&small, &blobs, &sha);
        assert!(small.get(&blobs, &sha).is_none(), "200 bytes exceed an eighth of 1024");
        let off = HotZips::new(0);
        read_and_keep(&off, &blobs, &sha);
        assert!(off.get(&blobs, &sha).is_none());
        assert_eq!(off.weight(), 0);
    }
}
