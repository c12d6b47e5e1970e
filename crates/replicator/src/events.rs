//! Following the applied log: every zip entry this node applies names a
//! blob it must hold; a snapshot install (or falling behind the event
//! channel) calls for a full comparison instead.

use std::sync::Arc;

use background::Worker;
use raft::StateEvent;
use tokio::sync::broadcast;

use crate::inner::Inner;
use crate::lag::Change;
use crate::placement::Placed;

pub(crate) async fn follow_events(inner: Arc<Inner>, mut events: broadcast::Receiver<StateEvent>, worker: Worker) {
    let mut stop = worker.stop_signal();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.changed() => return,
        };
        match event {
            Ok(StateEvent::Zip { sha256, size }) => {
                let holders = inner.control.placement(&sha256);
                inner.want(sha256, size, Some(&holders));
                inner.lags.note(Change::Zip { sha: sha256, size, holders });
            }
            Ok(StateEvent::Stored { sha256, node_id }) => {
                inner.lags.note(Change::Stored { sha: sha256, node: node_id });
                // A node catching up applies its own placement from before it
                // lost its data: correct what it no longer holds.
                if node_id == inner.me && !inner.blobs.exists(&sha256) {
                    let _ = inner.reports.send(Placed::Lost(sha256));
                }
            }
            Ok(StateEvent::Lost { sha256, node_id }) => inner.lags.note(Change::Lost { sha: sha256, node: node_id }),
            Ok(StateEvent::Purged { sha256 }) => inner.lags.note(Change::Purged { sha: sha256 }),
            Ok(StateEvent::Reset) => {
                tracing::info!("catalog replaced by a snapshot; comparing it with the local blobs");
                inner.rescan.notify_one();
                inner.lags.recount();
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                worker.error(format_args!("fell behind the applied log by {missed} events; rescanning"));
                tracing::info!(missed, "replicator fell behind the applied log; rescanning the catalog");
                inner.rescan.notify_one();
                inner.lags.recount();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
        worker.done();
    }
}
