//! Per-key deduplication of concurrent work: callers asking for the same key
//! while it is running share one execution and its result.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Runs at most one piece of work per key at a time.
///
/// The work runs in its own tokio task, so it completes (and its result is
/// shared with the remaining callers) even if the caller that started it is
/// cancelled. The key is forgotten when the work ends: a later call runs again.
pub struct Group<K, V> {
    calls: Arc<Mutex<HashMap<K, broadcast::Sender<V>>>>,
}

impl<K, V> Default for Group<K, V> {
    fn default() -> Self {
        Group { calls: Arc::default() }
    }
}

impl<K, V> Group<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` for `key`, or waits for the run already in flight.
    ///
    /// Panics if the shared work panicked.
    pub async fn run<F, Fut>(&self, key: K, f: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut result = {
            let mut calls = self.calls.lock();
            if let Some(running) = calls.get(&key) {
                running.subscribe()
            } else {
                let (tx, rx) = broadcast::channel(1);
                calls.insert(key.clone(), tx);
                drop(calls);
                self.start(key, f);
                rx
            }
        };
        match result.recv().await {
            Ok(v) => v,
            Err(_) => panic!("singleflight: the shared work panicked"),
        }
    }

    /// How many keys are in flight (for status pages and tests).
    pub fn in_flight(&self) -> usize {
        self.calls.lock().len()
    }

    #[cfg(test)]
    fn waiters(&self, key: &K) -> usize {
        self.calls.lock().get(key).map_or(0, |tx| tx.receiver_count())
    }

    fn start<F, Fut>(&self, key: K, f: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let finish = Finish { calls: self.calls.clone(), key: Some(key) };
        let work = f();
        tokio::spawn(async move {
            let v = work.await;
            finish.publish(v);
        });
    }
}

/// Removes the key when the work ends; on a panic the sender is dropped
/// unsent, which wakes the waiters with an error.
struct Finish<K: Hash + Eq, V> {
    calls: Arc<Mutex<HashMap<K, broadcast::Sender<V>>>>,
    key: Option<K>,
}

impl<K: Hash + Eq, V> Finish<K, V> {
    fn take(&mut self) -> Option<broadcast::Sender<V>> {
        let key = self.key.take()?;
        self.calls.lock().remove(&key)
    }

    fn publish(mut self, v: V) {
        // Every waiter subscribed under the lock before the sender left the
        // map, so each one receives the value.
        if let Some(tx) = self.take() {
            let _ = tx.send(v);
        }
    }
}

impl<K: Hash + Eq, V> Drop for Finish<K, V> {
    fn drop(&mut self) {
        self.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Notify;

    #[tokio::test]
    async fn hundred_concurrent_callers_share_one_run() {
        let group = Arc::new(Group::<String, usize>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let mut callers = Vec::new();
        for _ in 0..100 {
            let (group, runs, release) = (group.clone(), runs.clone(), release.clone());
            callers.push(tokio::spawn(async move {
                group
                    .run("k".to_string(), move || async move {
                        release.notified().await;
                        runs.fetch_add(1, Ordering::SeqCst) + 42
                    })
                    .await
            }));
        }
        wait_until(|| group.waiters(&"k".to_string()) == 100).await;
        release.notify_one();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(group.in_flight(), 0);
    }

    #[tokio::test]
    async fn cancelling_the_first_caller_does_not_cancel_the_work() {
        let group = Arc::new(Group::<&'static str, &'static str>::new());
        let release = Arc::new(Notify::new());
        let started = Arc::new(AtomicUsize::new(0));

        let first = {
            let (group, release, started) = (group.clone(), release.clone(), started.clone());
            tokio::spawn(async move {
                group
                    .run("k", move || async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        "done"
                    })
                    .await
            })
        };
        wait_until(|| started.load(Ordering::SeqCst) == 1).await;
        let second = {
            let group = group.clone();
            tokio::spawn(async move { group.run("k", || async { "second ran its own" }).await })
        };
        wait_until(|| group.waiters(&"k") == 2).await;
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        release.notify_one();
        assert_eq!(second.await.unwrap(), "done");
    }

    #[tokio::test]
    async fn a_finished_key_runs_again() {
        let group = Group::<u8, usize>::new();
        let runs = AtomicUsize::new(0);
        for expected in 1..=3 {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            assert_eq!(group.run(7, move || async move { n }).await, expected);
        }
        assert_eq!(group.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_panicking_run_releases_its_key() {
        let group = Arc::new(Group::<u8, u8>::new());
        let g = group.clone();
        let failed = tokio::spawn(async move { g.run(1, || async { panic!("boom") }).await });
        assert!(failed.await.unwrap_err().is_panic());
        assert_eq!(group.in_flight(), 0);
        assert_eq!(group.run(1, || async { 5 }).await, 5);
    }

    #[test]
    fn run_is_send_for_values_that_are_not_sync() {
        fn assert_send<T: Send>(_: &T) {}
        let group = Group::<u8, std::cell::Cell<u8>>::new();
        assert_send(&group.run(1, || async { std::cell::Cell::new(1) }));
    }

    async fn wait_until(cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "condition not met in 10s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
