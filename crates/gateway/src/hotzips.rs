//! Small zips kept ready after they were read and verified, so a hot zip
//! is served without a trip to a blocking thread and three syscalls.
//!
//! A kept zip is its blob file mapped into memory ([`crate::zerocopy::map`]):
//! a gateway connection sends it with `sendfile` straight from the page
//! cache, and the copy costs no heap. Each mapped zip holds a file
//! descriptor and a mapping, so at most [`MAX_MAPPED`] are kept (fewer when
//! the process may open few files); where mapping fails the bytes read are
//! kept instead.
//!
//! Keyed by sha256, so a cached copy is always the right content for any
//! catalog entry that names it. Each copy remembers the path and stamp of the
//! file it was read from: a hit costs one `stat` of that path, and a file
//! that changed on disk (bit rot, an operator's edit) or left it (quarantine,
//! GC) is read again, which verifies it and quarantines it if it is corrupt.
//! (An `fstat` of the mapped file would not see it quarantined.)

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use store::{BlobStore, FileStamp, Sha256};

/// Zips larger than this are streamed from disk, never held whole.
pub const WHOLE_READ_MAX: u64 = 1 << 20;

/// Most zips kept mapped at once (each holds a file descriptor).
pub const MAX_MAPPED: u64 = 4096;

pub struct HotZips {
    cache: Option<Cache<Sha256, Kept, ByWeight>>,
    max_item: u64,
    /// Whether kept zips are mapped files (else copies on the heap).
    map: bool,
}

#[derive(Clone)]
struct Kept {
    bytes: Bytes,
    /// The blob's file, built once: a hit stats it without building it.
    path: Arc<Path>,
    stamp: FileStamp,
    mapped: bool,
}

/// A copy weighs its length; a mapping at least `min_mapped`, which bounds
/// how many mappings (and open files) the cache holds.
#[derive(Clone)]
pub struct ByWeight {
    min_mapped: u64,
}

impl Weighter<Sha256, Kept> for ByWeight {
    fn weight(&self, _key: &Sha256, kept: &Kept) -> u64 {
        let len = kept.bytes.len() as u64 + 64;
        if kept.mapped {
            len.max(self.min_mapped)
        } else {
            len
        }
    }
}

impl HotZips {
    /// A cache of about `capacity` bytes; 0 turns it off. No single zip
    /// takes more than an eighth of it.
    pub fn new(capacity: u64) -> Self {
        if capacity == 0 {
            return HotZips { cache: None, max_item: 0, map: false };
        }
        // A quarter of the files this process may open, at most MAX_MAPPED.
        let max_mapped = open_file_limit().map_or(MAX_MAPPED, |n| (n / 4).min(MAX_MAPPED));
        let map = max_mapped >= 64;
        // quick_cache wants an estimate of the item count for its tables.
        let estimated_items = (capacity / (32 << 10)).clamp(16, 1 << 20) as usize;
        let weigher = ByWeight { min_mapped: capacity.div_ceil(max_mapped.max(1)) };
        let cache = Cache::with_weighter(estimated_items, capacity, weigher);
        HotZips { cache: Some(cache), max_item: (capacity / 8).min(WHOLE_READ_MAX), map }
    }

    /// Keeps a zip just read and verified from `file` and returns what to
    /// serve: the file mapped where it can be, else the bytes read.
    pub fn keep(&self, blobs: &BlobStore, sha: Sha256, bytes: Vec<u8>, stamp: FileStamp, file: File) -> Bytes {
        let len = bytes.len() as u64;
        if self.cache.is_none() || len > self.max_item {
            return Bytes::from(bytes);
        }
        let (bytes, mapped) = match self.map.then(|| crate::zerocopy::map(file, len)) {
            Some(Ok(mapped)) if mapped.len() as u64 == len => (mapped, true),
            Some(Err(e)) => {
                tracing::debug!(blob = %sha, error = %e, "cannot map a kept zip; keeping a copy");
                (Bytes::from(bytes), false)
            }
            _ => (Bytes::from(bytes), false),
        };
        self.put(sha, Kept { bytes: bytes.clone(), path: blobs.path_of(&sha).into(), stamp, mapped });
        bytes
    }

    /// The cached content of `sha`, if its file has not changed since it was read.
    pub fn get(&self, sha: &Sha256) -> Option<Bytes> {
        let cache = self.cache.as_ref()?;
        let kept = cache.get(sha)?;
        if FileStamp::at(&kept.path) == Some(kept.stamp) {
            return Some(kept.bytes);
        }
        cache.remove(sha);
        None
    }

    fn put(&self, sha: Sha256, kept: Kept) {
        if let Some(cache) = &self.cache {
            if kept.bytes.len() as u64 <= self.max_item {
                cache.insert(sha, kept);
            }
        }
    }

    /// Bytes held now (a mapping counts at least its minimum weight).
    pub fn weight(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}

/// The soft limit on open files, if there is one.
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use store::{BlobContent, BlobStore, Sha256};

    use super::{HotZips, MAX_MAPPED, WHOLE_READ_MAX};

    fn stored(blobs: &BlobStore, content: &[u8]) -> Sha256 {
        let sha = Sha256::of(content);
        let mut temp = blobs.temp().expect("temp blob");
        temp.file().write_all(content).expect("write temp blob");
        blobs.commit(temp, &sha).expect("commit blob");
        sha
    }

    fn read_and_keep(hot: &HotZips, blobs: &BlobStore, sha: &Sha256) {
        match blobs.read(sha, WHOLE_READ_MAX).expect("read blob") {
            Some(BlobContent::Whole { bytes, stamp, file }) => {
                hot.keep(blobs, *sha, bytes, stamp, file);
            }
            _ => panic!("a small blob is read whole"),
        }
    }

    #[test]
    fn a_kept_zip_is_served_until_its_file_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobStore::new(dir.path()).expect("blob store");
        let hot = HotZips::new(1 << 20);
        let sha = stored(&blobs, b"a small module zip");
        assert!(hot.get(&sha).is_none());
        read_and_keep(&hot, &blobs, &sha);
        assert_eq!(hot.get(&sha).as_deref(), Some(&b"a small module zip"[..]));

        // Bit rot on disk changes the file's stamp: the copy is dropped, so
        // the next read goes to the file and finds the corruption.
        let path = blobs.path_of(&sha);
        std::fs::write(&path, b"a small module zap").expect("rewrite blob");
        assert!(hot.get(&sha).is_none());
        assert!(hot.get(&sha).is_none(), "the stale copy stays dropped");
    }

    /// Quarantine and GC move or remove the file, and leave its inode (and
    /// so the mapping) as it was: the path is what is checked.
    #[test]
    fn a_kept_zip_whose_file_left_its_path_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobStore::new(dir.path()).expect("blob store");
        let hot = HotZips::new(1 << 20);
        let sha = stored(&blobs, b"a zip about to be quarantined");
        read_and_keep(&hot, &blobs, &sha);
        assert!(hot.get(&sha).is_some());
        std::fs::rename(blobs.path_of(&sha), dir.path().join("elsewhere")).expect("move blob away");
        assert!(hot.get(&sha).is_none());
    }

    /// A kept zip is its blob file mapped (sent with sendfile), and however
    /// small the zips, no more than MAX_MAPPED files stay open.
    #[test]
    fn kept_zips_are_mapped_files_and_their_number_is_bounded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobStore::new(dir.path()).expect("blob store");
        let hot = HotZips::new(1 << 20);
        assert!(hot.map, "this process may open enough files to map kept zips");
        let first = stored(&blobs, b"zip number 0");
        read_and_keep(&hot, &blobs, &first);
        let kept = hot.get(&first).expect("kept");
        assert!(crate::zerocopy::locate(&kept).is_some(), "a kept zip is a mapped file");
        for i in 1..(MAX_MAPPED + 500) {
            let sha = stored(&blobs, format!("zip number {i}").as_bytes());
            read_and_keep(&hot, &blobs, &sha);
        }
        let held = hot.cache.as_ref().map_or(0, |c| c.len() as u64);
        assert!(held > 0 && held <= MAX_MAPPED, "{held} zips kept mapped");
    }

    #[test]
    fn zips_over_an_eighth_of_the_memory_and_a_zero_size_cache_keep_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobStore::new(dir.path()).expect("blob store");
        let sha = stored(&blobs, &[7u8; 200]);
        let small = HotZips::new(1024);
        read_and_keep(&small, &blobs, &sha);
        assert!(small.get(&sha).is_none(), "200 bytes exceed an eighth of 1024");
        let off = HotZips::new(0);
        read_and_keep(&off, &blobs, &sha);
        assert!(off.get(&sha).is_none());
        assert_eq!(off.weight(), 0);
    }
}
