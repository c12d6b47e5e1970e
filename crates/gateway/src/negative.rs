use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::ApiError;

const MAX_ENTRIES: usize = 100_000;

/// Node-local memory of recent upstream "not found" answers, so probes for
/// paths that do not exist (the go command tries every path prefix) do not
/// all reach upstream. Entries expire after the TTL; nothing is kept forever.
pub struct NegativeCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, ApiError)>>,
}

impl NegativeCache {
    pub fn new(ttl: Duration) -> Self {
        NegativeCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &str) -> Option<ApiError> {
        let mut entries = self.entries.lock();
        match entries.get(key) {
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
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now() + self.ttl, err));
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
    fn zero_ttl_disables() {
        let cache = NegativeCache::new(Duration::ZERO);
        cache.insert("k".into(), ApiError::not_found("gone"));
        assert!(cache.get("k").is_none());
    }
}
