//! Writes through raft from this crate: one commit deadline, and what a
//! write raft did not confirm tells its caller.

use std::time::Duration;

use raft::ProposeError;
use tonic::Status;

/// How long a write (a catalog entry, an audit record, a purge, a
/// membership change) may take to commit; past it a client gets 503 and an
/// admin caller "outcome unknown".
pub(crate) const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// An admin write raft did not confirm, as the status `flotillactl` shows.
/// `what` names the write ("the purge"); `check` says how to see whether
/// it took effect after all, since after a lost leadership or a timeout
/// the entry may still commit: "not committed" is never "not done".
pub(crate) fn admin_status(e: ProposeError, me: u64, what: &str, check: &str) -> Status {
    match e {
        ProposeError::NotLeader { leader } => Status::deadline_exceeded(format!(
            "outcome unknown: node {me} stopped being the primary while {what} was being committed (primary now: {}); \
             it may still take effect{check}",
            leader.map_or("unknown".into(), |id| format!("node {id}"))
        )),
        ProposeError::Timeout => Status::deadline_exceeded(format!(
            "outcome unknown: {what} did not commit within {COMMIT_TIMEOUT:?} (no majority reachable?); it may still take effect{check}"
        )),
        e @ ProposeError::TooLarge { .. } => Status::failed_precondition(e.to_string()),
        ProposeError::Fatal(e) => Status::failed_precondition(format!("raft refused {what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfirmed_admin_write_is_outcome_unknown_with_how_to_check() {
        let lost = admin_status(ProposeError::NotLeader { leader: Some(3) }, 1, "the purge", "");
        assert_eq!(lost.code(), tonic::Code::DeadlineExceeded);
        assert!(lost.message().contains("node 1 stopped being the primary while the purge was being committed (primary now: node 3)"));
        let late = admin_status(ProposeError::Timeout, 1, "the membership change", ": check with flotillactl members list");
        assert_eq!(late.code(), tonic::Code::DeadlineExceeded);
        assert!(late.message().starts_with("outcome unknown: the membership change did not commit within 5s"), "{}", late.message());
        assert!(late.message().ends_with("it may still take effect: check with flotillactl members list"));
    }
}
