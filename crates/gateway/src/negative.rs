use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::ApiError;

const MAX_ENTRIES: usize = 100_000;
/// Memory the entries may take (keys and messages come from clients and
/// upstream, so they are counted, not only the entries).
const MAX_BYTES: usize = 16 << 20;
/// Bookkeeping per entry besides its key and message.
const ENTRY_OVERHEAD: usize = 96;

/// Node-local memory of recent upstream "not found" answers, so probes for
/// paths that do not exist (the go command tries every path prefix) do not
/// all reach upstream. Entries expire after the TTL; nothing is kept forever,
/// and the whole stays under `MAX_ENTRIES` entries and `MAX_BYTES` bytes.
pub struct NegativeCache {
    ttl: Duration,
    max_bytes: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, (Instant, ApiError)>,
    bytes: usize,
}

fn cost(key: &str, err: &ApiError) -> usize {
    key.len() + err.message.len() + ENTRY_OVERHEAD
}

impl Entries {
    fn remove(&mut self, key: &str) {
        if let Some((_, err)) = self.map.remove(key) {
            self.bytes -= cost(key, &err);
        }
    }

    fn retain_unexpired(&mut self, now: Instant) {
        self.map.retain(|_, (expires, _)| *expires > now);
        self.bytes = self.map.iter().map(|(k, (_, e))| cost(k, e)).sum();
    }
}

impl NegativeCache {
    pub fn new(ttl: Duration) -> Self {
        Self::with_max_bytes(ttl, MAX_BYTES)
    }

    fn with_max_bytes(ttl: Duration, max_bytes: usize) -> Self {
        NegativeCache { ttl, max_bytes, entries: Mutex::new(Entries::default()) }
    }

    /// Bytes the entries take (as counted against the limit).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.entries.lock().bytes
    }

    pub fn get(&self, key: &str) -> Option<ApiError> {
        let mut entries = self.entries.lock();
        match entries.map.get(key) {
            Some((expires, err)) if *expires > Instant::now() => Some(err.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: String, err: ApiError) {
        if self.ttl.is_zero() {
            return;
        }
        let size = cost(&key, &err);
        if size > self.max_bytes / 16 {
            return; // one entry never takes a large share
        }
        let mut entries = self.entries.lock();
        entries.remove(&key);
        if entries.map.len() >= MAX_ENTRIES || entries.bytes + size > self.max_bytes {
            entries.retain_unexpired(Instant::now());
            if entries.map.len() >= MAX_ENTRIES || entries.bytes + size > self.max_bytes {
                *entries = Entries::default();
            }
        }
        entries.bytes += size;
        entries.map.insert(key, (Instant::now() + self.ttl, err));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let cache = NegativeCache::new(Duration::from_millis(20));
        cache.insert("k".into(), ApiError::not_found("gone"));
        assert!(cache.get("k").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn memory_stays_bounded_in_bytes() {
        let cache = NegativeCache::with_max_bytes(Duration::from_secs(600), 64 << 10);
        let long = "x".repeat(1000);
        for i in 0..1000 {
            cache.insert(format!("example.com/{long}/{i}"), ApiError::not_found(format!("not found: {long}")));
            assert!(cache.bytes() <= 64 << 10, "{} bytes after {i} entries", cache.bytes());
        }
        assert!(cache.bytes() > 0, "nothing was kept");
        let key = "example.com/m".to_string();
        cache.insert(key.clone(), ApiError::not_found("gone"));
        assert!(cache.get(&key).is_some());
        // An entry too big for its share is not kept at all.
        cache.insert("big".into(), ApiError::not_found("y".repeat(8 << 10)));
        assert!(cache.get("big").is_none());
    }

    #[test]
    fn zero_ttl_disables() {
        let cache = NegativeCache::new(Duration::ZERO);
        cache.insert("k".into(), ApiError::not_found("gone"));
        assert!(cache.get("k").is_none());
    }
}
