//! Pins that keep blobs from garbage collection while a fill commits
//! them, and the lock collection holds while it deletes.

use std::collections::{HashMap, HashSet};

use super::BlobStore;
use crate::{Result, Sha256};

impl BlobStore {
    /// Keeps blob `sha` from garbage collection until the pin is dropped,
    /// and from the collection pass under way (see [`BlobStore::gc_begin`]).
    pub fn pin(&self, sha: &Sha256) -> BlobPin {
        let mut pins = self.inner.pins.lock();
        *pins.count.entry(*sha).or_insert(0) += 1;
        pins.touched.insert(*sha);
        BlobPin { store: self.clone(), sha: *sha }
    }

    /// Called by garbage collection just before its last look at the
    /// catalog: forgets which blobs were pinned before. A blob pinned or
    /// unpinned from now on is not deleted by this pass (its catalog entry
    /// may have been committed after that look); one whose pin ended before
    /// had its entry committed before, so the look sees it.
    pub fn gc_begin(&self) {
        self.inner.pins.lock().touched.clear();
    }

    /// Held by garbage collection while it deletes; see
    /// [`GcLock::delete_unpinned`].
    pub fn gc_lock(&self) -> GcLock<'_> {
        GcLock { store: self, pins: self.inner.pins.lock() }
    }
}

/// A blob garbage collection must not delete; see [`BlobStore::pin`].
pub struct BlobPin {
    store: BlobStore,
    sha: Sha256,
}

impl Drop for BlobPin {
    fn drop(&mut self) {
        let mut pins = self.store.inner.pins.lock();
        pins.touched.insert(self.sha);
        if let Some(n) = pins.count.get_mut(&self.sha) {
            *n -= 1;
            if *n == 0 {
                pins.count.remove(&self.sha);
            }
        }
    }
}

/// Pinned blobs (how many pins each) and those pinned or unpinned since
/// the collection pass under way began.
#[derive(Default)]
pub(super) struct Pins {
    count: HashMap<Sha256, usize>,
    touched: HashSet<Sha256>,
}

/// Garbage collection's hold on the blob store; see [`BlobStore::gc_lock`].
pub struct GcLock<'a> {
    store: &'a BlobStore,
    pins: parking_lot::MutexGuard<'a, Pins>,
}

impl GcLock<'_> {
    /// Deletes blob `sha` unless it is pinned or was pinned since
    /// [`BlobStore::gc_begin`]; `Ok(true)` when deleted.
    pub fn delete_unpinned(&self, sha: &Sha256) -> Result<bool> {
        if self.pins.count.contains_key(sha) || self.pins.touched.contains(sha) {
            return Ok(false);
        }
        self.store.delete(sha)
    }
}
