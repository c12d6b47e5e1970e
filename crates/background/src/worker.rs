//! [`Worker`]: what one background loop holds to report its status and to
//! learn that it must stop.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use api::{WorkerState, WorkerStatus};
use parking_lot::Mutex;
use tokio::sync::watch;

/// The status of one worker, shared by its handle and the runner.
pub(crate) struct Slot {
    name: String,
    status: Mutex<Status>,
}

struct Status {
    state: WorkerState,
    detail: Option<String>,
    last_error: Option<(String, SystemTime)>,
    errors: u64,
    completed: u64,
}

impl Slot {
    pub(crate) fn new(name: String) -> Arc<Slot> {
        let status = Status { state: WorkerState::Idle, detail: None, last_error: None, errors: 0, completed: 0 };
        Arc::new(Slot { name, status: Mutex::new(status) })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn snapshot(&self) -> WorkerStatus {
        let s = self.status.lock();
        let at = s.last_error.as_ref().map(|(_, at)| *at);
        WorkerStatus {
            name: self.name.clone(),
            state: s.state,
            detail: s.detail.clone(),
            last_error: s.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: at.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            last_error_at_ms: at.map(|t| t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)),
            errors: s.errors,
            completed: s.completed,
        }
    }

    /// The task ended: normally, or by a panic (`failure`).
    pub(crate) fn ended(&self, failure: Option<String>) {
        let mut s = self.status.lock();
        s.detail = None;
        match failure {
            None => s.state = WorkerState::Stopped,
            Some(why) => {
                s.state = WorkerState::Failed;
                s.errors += 1;
                s.last_error = Some((why, SystemTime::now()));
            }
        }
    }
}

/// The handle a background loop is given. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    slot: Arc<Slot>,
    stop: watch::Receiver<bool>,
}

impl Worker {
    pub(crate) fn new(slot: Arc<Slot>, stop: watch::Receiver<bool>) -> Worker {
        Worker { slot, stop }
    }

    pub fn name(&self) -> &str {
        self.slot.name()
    }

    /// Turns true when the worker must stop (its `changed()` also resolves
    /// then). Loops select on it next to their work.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Whether stopping was asked for.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waiting for work.
    pub fn idle(&self) {
        let mut s = self.slot.status.lock();
        s.state = WorkerState::Idle;
        s.detail = None;
    }

    /// Working on `detail` (a few words: the blob being pulled, a pass).
    pub fn working(&self, detail: impl Into<String>) {
        let mut s = self.slot.status.lock();
        s.state = WorkerState::Working;
        s.detail = Some(detail.into());
    }

    /// One unit of work finished; back to idle.
    pub fn done(&self) {
        let mut s = self.slot.status.lock();
        s.completed += 1;
        s.state = WorkerState::Idle;
        s.detail = None;
    }

    /// The work failed with `error`: recorded as the last error (with the
    /// time), and the worker is idle until it tries again.
    pub fn error(&self, error: impl Display) {
        let mut s = self.slot.status.lock();
        s.errors += 1;
        s.last_error = Some((error.to_string(), SystemTime::now()));
        s.state = WorkerState::Idle;
        s.detail = None;
    }
}
