//! The last misses this node filled from upstream, for the status page.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use gomod::{ModulePath, Version};

use crate::ApiError;

/// How many fills the status page shows.
const KEEP: usize = 20;

/// One upstream fill and how it ended.
#[derive(Clone, Debug)]
pub struct Fetch {
    pub at: SystemTime,
    /// `info`, `mod` or `zip`.
    pub kind: &'static str,
    pub module: String,
    pub version: String,
    pub took: Duration,
    /// `None` when it was stored, else the one-line reason it was not.
    pub error: Option<String>,
}

/// A small ring of the latest fills, newest first.
#[derive(Default)]
pub struct RecentFetches(Mutex<VecDeque<Fetch>>);

impl RecentFetches {
    pub fn record<T>(&self, kind: &'static str, module: &ModulePath, version: &Version, took: Duration, result: &Result<T, ApiError>) {
        let fetch = Fetch {
            at: SystemTime::now(),
            kind,
            module: module.to_string(),
            version: version.to_string(),
            took,
            error: result.as_ref().err().map(|e| e.message.clone()),
        };
        let mut ring = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if ring.len() == KEEP {
            ring.pop_back();
        }
        ring.push_front(fetch);
    }

    /// Newest first.
    pub fn list(&self) -> Vec<Fetch> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_twenty_newest_first() {
        let recent = RecentFetches::default();
        let module = ModulePath::new("example.com/m").unwrap();
        for i in 0..25 {
            let version = Version::new(&format!("v1.0.{i}")).unwrap();
            recent.record("zip", &module, &version, Duration::ZERO, &Ok::<(), ApiError>(()));
        }
        let list = recent.list();
        assert_eq!(list.len(), KEEP);
        assert_eq!(list[0].version, "v1.0.24");
        assert_eq!(list[KEEP - 1].version, "v1.0.5");
    }
}
