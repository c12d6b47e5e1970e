//! [`Workers`]: the one runner every background loop of a node is started
//! through, so each has a name, a tracing span and a status, and shutdown
//! stops them in reverse start order.

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::worker::{Slot, Worker};

/// The background workers of one node, in start order. Cheap to clone.
#[derive(Clone, Default)]
pub struct Workers {
    entries: Arc<Mutex<Vec<Entry>>>,
}

struct Entry {
    slot: Arc<Slot>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// A worker still ran when the shutdown deadline passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub worker: String,
}

impl std::fmt::Display for Overdue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "background worker {} was still running when the shutdown deadline passed", self.worker)
    }
}

impl std::error::Error for Overdue {}

/// Marks the worker ended when its task finishes, panics or is dropped.
struct Ended(Arc<Slot>);

impl Drop for Ended {
    fn drop(&mut self) {
        let failure = std::thread::panicking().then(|| "panicked (the log has the message)".to_string());
        self.0.ended(failure);
    }
}

impl Workers {
    pub fn new() -> Workers {
        Workers::default()
    }

    /// Starts `run` as the worker `name`, in a tracing span
    /// `worker{name=…}`. The future gets the worker's [`Worker`] handle: its
    /// stop signal and where it reports what it does.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, run: F)
    where
        F: FnOnce(Worker) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let slot = Slot::new(name.clone());
        let (stop, stop_rx) = watch::channel(false);
        let span = tracing::info_span!("worker", name = %name);
        let work = span.in_scope(|| run(Worker::new(slot.clone(), stop_rx)));
        let ended = Ended(slot.clone());
        let task = tokio::spawn(
            async move {
                let _ended = ended;
                work.await;
            }
            .instrument(span),
        );
        self.entries.lock().push(Entry { slot, stop, task: Some(task) });
    }

    /// Every worker's status, in start order.
    pub fn status(&self) -> Vec<api::WorkerStatus> {
        self.entries.lock().iter().map(|e| e.slot.snapshot()).collect()
    }

    /// Stops the workers one at a time, the last started first: each is
    /// told to stop and awaited before the next is told. Fails with the
    /// first worker still running at `deadline` (the ones before it in
    /// start order are then told to stop without waiting for them).
    pub async fn stop_all(&self, deadline: Instant) -> Result<(), Overdue> {
        let count = self.entries.lock().len();
        for i in (0..count).rev() {
            let (name, task) = {
                let mut entries = self.entries.lock();
                let entry = &mut entries[i];
                let _ = entry.stop.send(true);
                (entry.slot.name().to_string(), entry.task.take())
            };
            let Some(task) = task else { continue };
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                for entry in self.entries.lock().iter().take(i) {
                    let _ = entry.stop.send(true);
                }
                return Err(Overdue { worker: name });
            }
            tracing::info!(worker = %name, "background worker stopped");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use api::WorkerState;

    use super::*;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    /// A worker that waits for its stop signal, then notes its name.
    fn waiter(workers: &Workers, name: &str, stopped: &Arc<Mutex<Vec<String>>>) {
        let stopped = stopped.clone();
        workers.spawn(name, move |w| async move {
            let mut stop = w.stop_signal();
            let _ = stop.wait_for(|s| *s).await;
            stopped.lock().push(w.name().to_string());
        });
    }

    #[tokio::test]
    async fn workers_stop_in_reverse_start_order() {
        let workers = Workers::new();
        let stopped = Arc::new(Mutex::new(Vec::new()));
        for name in ["events", "placement", "announce"] {
            waiter(&workers, name, &stopped);
        }
        workers.stop_all(soon()).await.unwrap();
        assert_eq!(*stopped.lock(), ["announce", "placement", "events"]);
        let states: Vec<_> = workers.status().into_iter().map(|s| (s.name, s.state)).collect();
        assert_eq!(
            states,
            [
                ("events".to_string(), WorkerState::Stopped),
                ("placement".to_string(), WorkerState::Stopped),
                ("announce".to_string(), WorkerState::Stopped)
            ]
        );
    }

    #[tokio::test]
    async fn status_shows_work_errors_and_counts() {
        let workers = Workers::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        workers.spawn("replication-worker-1", move |w| async move {
            let _ = tx.send(w.clone());
            let _ = w.stop_signal().wait_for(|s| *s).await;
        });
        let w = rx.await.unwrap();
        let status = || workers.status().remove(0);
        assert_eq!((status().state, status().detail), (WorkerState::Idle, None));
        w.working("pulling blob ab12");
        assert_eq!((status().state, status().detail.as_deref()), (WorkerState::Working, Some("pulling blob ab12")));
        w.error("node 1: connection refused");
        let s = status();
        assert_eq!((s.state, s.last_error.as_deref(), s.errors), (WorkerState::Idle, Some("node 1: connection refused"), 1));
        let at = s.last_error_at.expect("time of the error");
        assert!(at.ends_with('Z') && at.len() == "2026-01-01T00:00:00Z".len(), "{at}");
        assert!(s.last_error_at_ms.is_some_and(|ms| ms > 0));
        w.working("pulling blob cd34");
        w.done();
        let s = status();
        assert_eq!((s.state, s.detail, s.completed), (WorkerState::Idle, None, 1));
        assert_eq!(s.last_error.as_deref(), Some("node 1: connection refused"), "the last error stays after a success");
        workers.stop_all(soon()).await.unwrap();
    }

    #[tokio::test]
    async fn a_worker_that_ignores_stop_is_named_at_the_deadline_and_earlier_ones_are_told() {
        let workers = Workers::new();
        let stopped = Arc::new(Mutex::new(Vec::new()));
        waiter(&workers, "first", &stopped);
        workers.spawn("stubborn", |_w| std::future::pending());
        let started = std::time::Instant::now();
        let err = workers.stop_all(Instant::now() + Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(err.worker, "stubborn");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("stubborn"), "{err}");
        tokio::time::timeout(Duration::from_secs(5), async {
            while stopped.lock().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the worker started before the stubborn one was told to stop");
    }

    #[tokio::test]
    async fn a_panicking_worker_shows_as_failed() {
        let workers = Workers::new();
        workers.spawn("scrub", |_w| async { panic!("boom") });
        tokio::time::timeout(Duration::from_secs(5), async {
            while workers.status()[0].state != WorkerState::Failed {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the panic is seen");
        let s = workers.status().remove(0);
        assert!(s.last_error.is_some_and(|e| e.contains("panicked")));
        workers.stop_all(soon()).await.unwrap();
    }
}
