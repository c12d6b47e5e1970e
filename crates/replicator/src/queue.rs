//! The node-local queue of blobs this node lacks, kept in RocksDB (`local`
//! column family, `rq\0<sha256 hex>` → JSON [`Entry`]) so a restart resumes
//! it, and mirrored in memory for the workers.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use store::{Db, DbOp, Sha256, CF_LOCAL};
use tokio::sync::Notify;

const PREFIX: &[u8] = b"rq\0";

/// One missing blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub size: u64,
    pub enqueued_ms: u64,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_ms: u64,
}

/// Counts for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStats {
    pub blobs: u64,
    pub bytes: u64,
    pub oldest_ms: Option<u64>,
    pub failing: u64,
}

pub struct Queue {
    db: Db,
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<Sha256, Entry>,
    in_flight: HashSet<Sha256>,
}

impl Queue {
    /// Loads the queue persisted in `db`.
    pub fn open(db: Db) -> Result<Queue, store::Error> {
        let mut entries = BTreeMap::new();
        for (key, value) in db.scan_prefix(CF_LOCAL, PREFIX)? {
            let sha = std::str::from_utf8(&key[PREFIX.len()..]).ok().and_then(|h| h.parse::<Sha256>().ok());
            match (sha, serde_json::from_slice::<Entry>(&value)) {
                (Some(sha), Ok(entry)) => {
                    entries.insert(sha, Entry { next_attempt_ms: 0, ..entry });
                }
                _ => tracing::warn!(key = %String::from_utf8_lossy(&key), "dropping an undecodable replication queue entry"),
            }
        }
        Ok(Queue { db, state: Mutex::new(State { entries, in_flight: HashSet::new() }), notify: Notify::new() })
    }

    /// Adds `sha` unless queued already; `true` if it was new.
    pub fn push(&self, sha: Sha256, size: u64, now_ms: u64) -> bool {
        let entry = {
            let mut state = self.state.lock();
            if let Some(existing) = state.entries.get_mut(&sha) {
                // Asked again (e.g. a corrupt copy was found): retry soon.
                existing.next_attempt_ms = existing.next_attempt_ms.min(now_ms);
                drop(state);
                self.notify.notify_one();
                return false;
            }
            let entry = Entry { size, enqueued_ms: now_ms, attempts: 0, last_error: None, next_attempt_ms: 0 };
            state.entries.insert(sha, entry.clone());
            entry
        };
        self.persist(&sha, &entry);
        self.notify.notify_one();
        true
    }

    /// Waits for the next entry that is due and not being worked on, and
    /// marks it in flight.
    pub async fn next(&self, now_ms: impl Fn() -> u64) -> (Sha256, Entry) {
        loop {
            let notified = self.notify.notified();
            let wait = {
                let mut state = self.state.lock();
                let now = now_ms();
                let due = state
                    .entries
                    .iter()
                    .filter(|(sha, _)| !state.in_flight.contains(sha))
                    .min_by_key(|(_, e)| (e.next_attempt_ms, e.enqueued_ms))
                    .map(|(sha, e)| (*sha, e.clone()));
                match due {
                    Some((sha, entry)) if entry.next_attempt_ms <= now => {
                        state.in_flight.insert(sha);
                        return (sha, entry);
                    }
                    Some((_, entry)) => Duration::from_millis(entry.next_attempt_ms - now),
                    None => Duration::from_secs(3600),
                }
            };
            tokio::select! {
                _ = notified => {},
                _ = tokio::time::sleep(wait) => {},
            }
        }
    }

    /// `sha` is stored: forget it.
    pub fn done(&self, sha: &Sha256) {
        {
            let mut state = self.state.lock();
            state.in_flight.remove(sha);
            state.entries.remove(sha);
        }
        self.delete(sha);
    }

    /// No longer wanted (purged from the catalog).
    pub fn remove(&self, sha: &Sha256) {
        let removed = self.state.lock().entries.remove(sha).is_some();
        if removed {
            self.delete(sha);
        }
    }

    /// An attempt failed: remember why and retry after `backoff`.
    pub fn failed(&self, sha: &Sha256, error: String, backoff: Duration, now_ms: u64) -> u32 {
        let entry = {
            let mut state = self.state.lock();
            state.in_flight.remove(sha);
            let Some(entry) = state.entries.get_mut(sha) else { return 0 };
            entry.attempts += 1;
            entry.last_error = Some(error);
            entry.next_attempt_ms = now_ms + backoff.as_millis() as u64;
            entry.clone()
        };
        self.persist(sha, &entry);
        self.notify.notify_one();
        entry.attempts
    }

    /// Gives up an in-flight entry without counting an attempt (shutdown).
    pub fn release(&self, sha: &Sha256) {
        self.state.lock().in_flight.remove(sha);
    }

    pub fn get(&self, sha: &Sha256) -> Option<Entry> {
        self.state.lock().entries.get(sha).cloned()
    }

    pub fn contains(&self, sha: &Sha256) -> bool {
        self.state.lock().entries.contains_key(sha)
    }

    pub fn shas(&self) -> Vec<Sha256> {
        self.state.lock().entries.keys().copied().collect()
    }

    /// Queued blobs whose last pull failed, oldest first, at most `limit`.
    pub fn failing(&self, limit: usize) -> Vec<(Sha256, Entry)> {
        let state = self.state.lock();
        let mut out: Vec<(Sha256, Entry)> =
            state.entries.iter().filter(|(_, e)| e.attempts > 0).map(|(sha, e)| (*sha, e.clone())).collect();
        out.sort_by_key(|(_, e)| e.enqueued_ms);
        out.truncate(limit);
        out
    }

    pub fn stats(&self) -> QueueStats {
        let state = self.state.lock();
        let mut stats = QueueStats::default();
        for entry in state.entries.values() {
            stats.blobs += 1;
            stats.bytes += entry.size;
            stats.oldest_ms = Some(stats.oldest_ms.map_or(entry.enqueued_ms, |o| o.min(entry.enqueued_ms)));
            if entry.attempts > 0 {
                stats.failing += 1;
            }
        }
        stats
    }

    fn persist(&self, sha: &Sha256, entry: &Entry) {
        let value = serde_json::to_vec(entry).unwrap_or_default();
        if let Err(e) = self.db.write(vec![DbOp::Put { cf: CF_LOCAL, key: key(sha), value }], false) {
            tracing::warn!(blob = %sha, error = %e, "could not persist a replication queue entry (anti-entropy will find it again)");
        }
    }

    fn delete(&self, sha: &Sha256) {
        if let Err(e) = self.db.write(vec![DbOp::Delete { cf: CF_LOCAL, key: key(sha) }], false) {
            tracing::warn!(blob = %sha, error = %e, "could not delete a replication queue entry");
        }
    }
}

fn key(sha: &Sha256) -> Vec<u8> {
    [PREFIX, sha.to_hex().as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> Sha256 {
        Sha256::of(&[n])
    }

    #[tokio::test]
    async fn survives_reopening_and_orders_by_due_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let q = Queue::open(db.clone()).unwrap();
        assert!(q.push(sha(1), 10, 100));
        assert!(q.push(sha(2), 20, 200));
        assert!(!q.push(sha(1), 10, 300), "a queued blob is not queued twice");
        let (first, _) = q.next(|| 1000).await;
        assert_eq!(first, sha(1));
        assert_eq!(q.failed(&first, "peer down".into(), Duration::from_secs(60), 1000), 1);
        let (second, _) = q.next(|| 1000).await;
        assert_eq!(second, sha(2), "a failing entry waits for its backoff");
        q.done(&second);
        assert_eq!(q.stats(), QueueStats { blobs: 1, bytes: 10, oldest_ms: Some(100), failing: 1 });
        drop(q);

        let q = Queue::open(db).unwrap();
        let entry = q.get(&sha(1)).expect("persisted");
        assert_eq!((entry.attempts, entry.last_error.as_deref()), (1, Some("peer down")));
        assert!(!q.contains(&sha(2)));
        let (again, _) = tokio::time::timeout(Duration::from_secs(1), q.next(|| 1000)).await.expect("due after restart");
        assert_eq!(again, sha(1));
    }
}
