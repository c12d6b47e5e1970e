//! The byte budget of AppendEntries: how much one batch carries to a peer,
//! and cutting a batch to it.

use openraft::raft::AppendEntriesRequest;

use crate::codec::encoded_len;
use crate::types::TypeConfig;

/// The byte budget of AppendEntries to one peer: the configured one, halved
/// (down to [`MIN_ADAPTED_BUDGET`], still at least one entry) each time a
/// batch did not come back within openraft's timeout (a slow link or disk),
/// and doubled back after each batch that did.
pub(super) struct BatchBudget {
    full: usize,
    now: usize,
    /// A batch was sent and its answer never awaited: openraft dropped the
    /// call at its timeout.
    in_flight: bool,
}

pub(super) const MIN_ADAPTED_BUDGET: usize = 64 << 10;

impl BatchBudget {
    pub(super) fn new(full: usize) -> Self {
        BatchBudget { full, now: full, in_flight: false }
    }

    /// The budget for the next batch.
    pub(super) fn begin(&mut self, target: u64) -> usize {
        if self.in_flight && self.now > MIN_ADAPTED_BUDGET {
            self.now = (self.now / 2).max(MIN_ADAPTED_BUDGET);
            tracing::info!(node = target, budget = self.now, "an AppendEntries batch timed out; smaller batches to this node for now");
        }
        self.in_flight = true;
        self.now
    }

    /// The batch got an answer in time (`ok`: a successful one).
    pub(super) fn answered(&mut self, ok: bool) {
        self.in_flight = false;
        if ok {
            self.now = self.now.saturating_mul(2).min(self.full);
        }
    }
}

/// Cuts `req` to the entries that fit `budget` bytes (their encoded size;
/// always at least one) and clamps `leader_commit` to the last entry sent,
/// so the follower never commits past what it received. Returns the last
/// entry sent when the batch was cut (openraft then hears `PartialSuccess`
/// and sends the rest next).
pub(crate) fn trim_batch(req: &mut AppendEntriesRequest<TypeConfig>, budget: usize) -> Option<crate::types::LogId> {
    let mut used = 0usize;
    let mut keep = 0usize;
    for entry in &req.entries {
        let size = encoded_len(entry);
        if keep > 0 && used.saturating_add(size) > budget {
            break;
        }
        used = used.saturating_add(size);
        keep += 1;
    }
    let cut = keep < req.entries.len();
    req.entries.truncate(keep);
    let last = req.entries.last().map(|e| e.log_id)?;
    if req.leader_commit.is_some_and(|commit| commit.index > last.index) {
        req.leader_commit = Some(last);
    }
    cut.then_some(last)
}
