//! The gateway-URL announce loop: keeps this node's `advertise_url`
//! recorded through raft.

use std::sync::Arc;
use std::time::Duration;

use crate::RaftCluster;

impl RaftCluster {
    /// Keeps this node's gateway URL recorded in the catalog (through the
    /// primary), so other nodes can redirect clients to it when it leads and
    /// every node's status lists every member's gateway.
    pub async fn announce_gateway_url(self: Arc<Self>, worker: background::Worker) {
        let mut stop = worker.stop_signal();
        let mut status = self.control.watch();
        let mut failures = 0u32;
        loop {
            let me = self.control.node_id();
            if self.control.leader().is_some() && self.control.gateway_url(me).as_deref() != Some(&self.advertise_url) {
                match self.control.announce(&self.advertise_url).await {
                    Ok(index) => {
                        worker.done();
                        failures = 0;
                        tracing::info!(url = %self.advertise_url, index, "announced this node's gateway URL");
                    }
                    // Elections make the first tries fail; say so only if it lasts.
                    Err(e) => {
                        worker.error(format_args!("announcing {}: {e}", self.advertise_url));
                        failures += 1;
                        if failures % 10 == 3 {
                            tracing::warn!(error = %e, "could not announce this node's gateway URL; retrying");
                        }
                    }
                }
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                _ = stop.changed() => return,
            }
        }
    }
}
