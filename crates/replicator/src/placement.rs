//! Placement reports: each node tells the primary which blobs it now holds
//! and which it lost, and the primary records them through raft.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use background::Worker;
use proto::ReportRequest;
use raft::{Command, ControlPlane, ProposeError};
use store::Sha256;
use tokio::sync::mpsc;
use tonic::Request;

use crate::inner::Inner;
use crate::workers::backoff;
use crate::{Error, Result};

/// What the primary is told about this node's copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Placed {
    Stored(Sha256),
    Lost(Sha256),
}

/// Sends this node's placement changes to the primary in batches, until
/// they commit.
pub(crate) async fn report_placement(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Placed>, worker: Worker) {
    let mut stop = worker.stop_signal();
    let mut pending: Vec<Placed> = Vec::new();
    let mut failures = 0u32;
    loop {
        if pending.is_empty() {
            tokio::select! {
                placed = rx.recv() => match placed {
                    Some(placed) => pending.push(placed),
                    None => return,
                },
                _ = stop.changed() => return,
            }
            // Let a burst of copies share one raft entry.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while let Ok(placed) = rx.try_recv() {
            pending.push(placed);
        }
        // What is still true and not yet recorded, once each.
        let mut seen = HashSet::new();
        pending.retain(|placed| {
            let (sha, held) = match placed {
                Placed::Stored(sha) => (sha, true),
                Placed::Lost(sha) => (sha, false),
            };
            let listed = inner.control.placement(sha).contains(&inner.me);
            seen.insert(*placed) && inner.blobs.exists(sha) == held && listed != held
        });
        if pending.is_empty() {
            continue;
        }
        // At most what the primary takes in one report (one raft entry of
        // well under a MiB); the rest goes in the next rounds.
        let batch = pending.len().min(crate::service::MAX_REPORT);
        worker.working(format!("reporting {batch} of {} placement changes to the primary", pending.len()));
        match send_report(&inner, &pending[..batch]).await {
            Ok(()) => {
                worker.done();
                tracing::debug!(reports = batch, "placement reported");
                pending.drain(..batch);
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures, Duration::from_secs(5));
                worker.error(format_args!("reporting {} placement changes: {e}", pending.len()));
                tracing::warn!(reports = pending.len(), error = %e, retry_in_ms = wait.as_millis() as u64, "could not report blob placement; will retry");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn send_report(inner: &Inner, placed: &[Placed]) -> Result<()> {
    let (mut stored, mut lost) = (Vec::new(), Vec::new());
    for p in placed {
        match p {
            Placed::Stored(sha) => stored.push(*sha),
            Placed::Lost(sha) => lost.push(*sha),
        }
    }
    let control = &inner.control;
    if control.is_acting_primary() {
        return Ok(propose_placement(control, inner.me, lost, stored).await.map(|_| ())?);
    }
    let (stored, lost) = (stored.iter().map(Sha256::to_hex).collect(), lost.iter().map(Sha256::to_hex).collect());
    let leader = match control.leader() {
        Some(l) => l,
        None => control.wait_for_leader(Duration::from_secs(5)).await.ok_or_else(|| Error::Report("no primary".into()))?,
    };
    if leader == inner.me {
        return Err(Error::Report("this node is leader but not yet acting as primary".into()));
    }
    let mut request = Request::new(ReportRequest { from: inner.me, sha256: stored, lost });
    inner.auth.stamp(&mut request);
    // The primary proposes the report through raft (5 s per entry, two at most).
    request.set_timeout(Duration::from_secs(12));
    inner.client(leader)?.report(request).await.map(|_| ()).map_err(|s| Error::Report(format!("primary (node {leader}): {}", s.message())))
}

/// Records placement changes of `node` through raft: losses first, so a
/// copy lost and pulled again ends up listed. Returns the last log index.
pub(crate) async fn propose_placement(
    control: &ControlPlane,
    node: u64,
    lost: Vec<Sha256>,
    stored: Vec<Sha256>,
) -> Result<u64, ProposeError> {
    let mut index = 0;
    if !lost.is_empty() {
        index = control.propose(Command::BlobLost { node_id: node, blobs: lost }, Duration::from_secs(5)).await?;
    }
    if !stored.is_empty() {
        index = control.propose(Command::BlobStored { node_id: node, blobs: stored }, Duration::from_secs(5)).await?;
    }
    Ok(index)
}
