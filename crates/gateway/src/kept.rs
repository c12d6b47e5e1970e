//! Answers read from the catalog, kept in memory by request path: a hot
//! `.info`, `.mod`, `@v/list` or `@latest` (and a zip's record) costs a
//! hash lookup instead of a RocksDB read, and for a list also instead of a
//! scan of the module's versions and a merge.
//!
//! Each entry carries the catalog's [`CatalogEpoch`] taken before it was
//! read, and is used only while that still holds: what a version recorded
//! once (`.info`, `.mod`, zip record; first writer wins, so never
//! rewritten) until any catalog key is deleted (a purge, a snapshot
//! install); a list or `@latest` until any catalog write (a refresh, a new
//! version) and only while fresh (`cache.list_ttl`). The bound is a quarter
//! of `cache.memory`.

use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use store::{CatalogEpoch, ZipRef};

#[derive(Clone)]
pub enum Answer {
    /// A version's `.info` or `.mod`.
    Recorded(Bytes),
    /// A version's zip record (shared: a hit clones no `h1` string).
    Zip(Arc<ZipRef>),
    /// A list or `@latest` body, and when upstream's copy was fetched.
    Mutable { body: Bytes, fetched_at_ms: u64 },
}

#[derive(Clone)]
struct Entry {
    answer: Answer,
    epoch: CatalogEpoch,
}

#[derive(Clone)]
pub struct BySize;

impl Weighter<String, Entry> for BySize {
    fn weight(&self, path: &String, entry: &Entry) -> u64 {
        let body = match &entry.answer {
            Answer::Recorded(body) | Answer::Mutable { body, .. } => body.len(),
            Answer::Zip(_) => 128,
        };
        (path.len() + body + 64) as u64
    }
}

pub struct KeptAnswers {
    cache: Option<Cache<String, Entry, BySize>>,
}

impl KeptAnswers {
    /// About `capacity` bytes; 0 keeps nothing.
    pub fn new(capacity: u64) -> Self {
        if capacity == 0 {
            return KeptAnswers { cache: None };
        }
        let estimated_items = (capacity / 1024).clamp(16, 1 << 20) as usize;
        KeptAnswers { cache: Some(Cache::with_weighter(estimated_items, capacity, BySize)) }
    }

    /// What was kept for `path`, if the catalog has not changed in a way
    /// that could make it wrong since (`now`: the epoch taken now).
    pub fn get(&self, path: &str, now: CatalogEpoch) -> Option<Answer> {
        let entry = self.cache.as_ref()?.get(path)?;
        let valid = match entry.answer {
            Answer::Recorded(_) | Answer::Zip(_) => entry.epoch.removals == now.removals,
            Answer::Mutable { .. } => entry.epoch == now,
        };
        valid.then_some(entry.answer)
    }

    /// Keeps `answer`, read from the catalog after `epoch` was taken.
    pub fn put(&self, path: &str, epoch: CatalogEpoch, answer: Answer) {
        if let Some(cache) = &self.cache {
            cache.insert(path.to_owned(), Entry { answer, epoch });
        }
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.weight())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use store::CatalogEpoch;

    use super::{Answer, KeptAnswers};

    fn epoch(writes: u64, removals: u64) -> CatalogEpoch {
        CatalogEpoch { writes, removals }
    }

    fn body(answer: Option<Answer>) -> Option<Bytes> {
        match answer? {
            Answer::Recorded(b) | Answer::Mutable { body: b, .. } => Some(b),
            Answer::Zip(_) => None,
        }
    }

    #[test]
    fn a_recorded_file_is_kept_until_a_catalog_key_is_deleted() {
        let kept = KeptAnswers::new(1 << 20);
        let path = "/example.com/a/@v/v1.0.0.info";
        kept.put(path, epoch(5, 1), Answer::Recorded(Bytes::from_static(b"{}")));
        assert_eq!(body(kept.get(path, epoch(5, 1))).as_deref(), Some(&b"{}"[..]));
        assert!(body(kept.get(path, epoch(9, 1))).is_some(), "new writes never change a recorded version");
        assert!(kept.get(path, epoch(9, 2)).is_none(), "a purge or snapshot install may have removed it");
        assert!(kept.get("/example.com/a/@v/v1.0.1.info", epoch(5, 1)).is_none());
    }

    #[test]
    fn a_list_is_kept_only_until_the_next_catalog_write() {
        let kept = KeptAnswers::new(1 << 20);
        let path = "/example.com/a/@v/list";
        kept.put(path, epoch(5, 1), Answer::Mutable { body: Bytes::from_static(b"v1.0.0\n"), fetched_at_ms: 1 });
        assert!(kept.get(path, epoch(5, 1)).is_some());
        assert!(kept.get(path, epoch(6, 1)).is_none(), "a new version or a refreshed list");
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let kept = KeptAnswers::new(0);
        kept.put("/p", epoch(0, 0), Answer::Recorded(Bytes::from_static(b"x")));
        assert!(kept.get("/p", epoch(0, 0)).is_none());
        assert_eq!(kept.weight(), 0);
    }
}
