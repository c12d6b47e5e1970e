//! The `workers` list of `/api/v1/status`: each named background loop of
//! the node, what it is doing and its last error.

use serde::Serialize;

/// What a background worker is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Waiting for work (or for its next pass).
    Idle,
    /// Working on what `detail` says.
    Working,
    /// Ended (the node is shutting down, or it had nothing to do).
    Stopped,
    /// Ended by a panic (`last_error` says which).
    Failed,
}

/// One background worker, as `/api/v1/status` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkerStatus {
    /// Stable name, also its tracing span's `name` field (`anti-entropy`,
    /// `replication-worker-1`, …).
    pub name: String,
    pub state: WorkerState,
    /// What it works on (e.g. the blob being pulled), in a few words.
    pub detail: Option<String>,
    /// The last error it met, kept after it recovered.
    pub last_error: Option<String>,
    /// When that was, RFC 3339 (UTC, seconds).
    pub last_error_at: Option<String>,
    /// The same time in milliseconds since the Unix epoch.
    pub last_error_at_ms: Option<u64>,
    /// Errors since the process started.
    pub errors: u64,
    /// Units of work finished since the process started (blobs pulled,
    /// passes done, reports sent).
    pub completed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_status_serialises_every_key() {
        let w = WorkerStatus {
            name: "scrub".into(),
            state: WorkerState::Working,
            detail: Some("blob 3 of 9".into()),
            last_error: None,
            last_error_at: None,
            last_error_at_ms: None,
            errors: 0,
            completed: 2,
        };
        assert_eq!(
            serde_json::to_value(&w).unwrap(),
            json!({
                "name": "scrub", "state": "working", "detail": "blob 3 of 9", "last_error": null,
                "last_error_at": null, "last_error_at_ms": null, "errors": 0, "completed": 2,
            })
        );
    }
}
