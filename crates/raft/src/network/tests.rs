//! Tests of the transport: cutting AppendEntries to the byte budget, the
//! budget's adaptation, and refusing another wire version.

use std::collections::BTreeMap;

use openraft::error::RPCError;
use openraft::raft::AppendEntriesRequest;
use openraft::{CommittedLeaderId, EntryPayload};
use proto::tls::Transport;
use tonic::{Code, Request};

use super::batch::{trim_batch, BatchBudget, MIN_ADAPTED_BUDGET};
use super::client::status_error;
use super::ClusterAuth;
use crate::codec::encoded_len;
use crate::types::{Command, Entry, LogId, TypeConfig, Vote};

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

/// An entry whose command is about `bytes` long.
fn entry(index: u64, bytes: usize) -> Entry {
    Entry { log_id: log_id(index), payload: EntryPayload::Normal(Command::AnnounceNode { node_id: 1, gateway_url: "x".repeat(bytes) }) }
}

fn request(sizes: &[usize], commit: Option<u64>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        leader_commit: commit.map(log_id),
        entries: sizes.iter().enumerate().map(|(i, &b)| entry(i as u64 + 1, b)).collect(),
    }
}

fn indexes(req: &AppendEntriesRequest<TypeConfig>) -> Vec<u64> {
    req.entries.iter().map(|e| e.log_id.index).collect()
}

#[test]
fn a_batch_is_cut_to_its_byte_budget_and_commits_no_further() {
    const K: usize = 1 << 10;
    let mut req = request(&[400 * K, 400 * K, 400 * K, 400 * K, 400 * K], Some(5));
    assert_eq!(trim_batch(&mut req, 1 << 20), Some(log_id(2)));
    assert_eq!(indexes(&req), [1, 2]);
    assert!(req.entries.iter().map(encoded_len).sum::<usize>() <= 1 << 20);
    assert_eq!(req.leader_commit, Some(log_id(2)), "the follower must not commit entries it did not get");

    // The budget counts the encoded entry, not only its payload.
    let one = encoded_len(&entry(1, 1000));
    assert!(one > 1000);
    let mut req = request(&[1000, 1000, 1000], Some(1));
    assert_eq!(trim_batch(&mut req, 2 * one), Some(log_id(2)));
    assert_eq!(indexes(&req), [1, 2]);
    assert_eq!(req.leader_commit, Some(log_id(1)), "a commit below the batch's end stays");
}

#[test]
fn an_entry_larger_than_the_budget_is_sent_alone() {
    let mut req = request(&[3 << 20, 10, 10], Some(3));
    assert_eq!(trim_batch(&mut req, 1 << 20), Some(log_id(1)));
    assert_eq!(indexes(&req), [1]);
    assert_eq!(req.leader_commit, Some(log_id(1)));

    let mut req = request(&[3 << 20], None);
    assert_eq!(trim_batch(&mut req, 1 << 20), None, "the only entry is sent whole: nothing was cut");
    assert_eq!(indexes(&req), [1]);
    assert_eq!(req.leader_commit, None);
}

#[test]
fn a_batch_within_budget_and_a_heartbeat_are_left_alone() {
    let mut req = request(&[100, 100, 100], Some(9));
    assert_eq!(trim_batch(&mut req, 1 << 20), None);
    assert_eq!(indexes(&req), [1, 2, 3]);
    assert_eq!(req.leader_commit, Some(log_id(3)), "clamped to the last entry sent");

    let mut heartbeat = request(&[], Some(9));
    assert_eq!(trim_batch(&mut heartbeat, 1 << 20), None);
    assert_eq!(heartbeat.leader_commit, Some(log_id(9)), "a heartbeat tells the whole commit");
}

#[test]
fn a_call_of_another_wire_version_is_refused_before_its_body() {
    let peers = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
    let auth = ClusterAuth::new("secret", "cluster", peers, Transport::Plaintext).unwrap();
    let stamped = || {
        let mut request = Request::new(());
        auth.stamp(&mut request);
        request
    };
    let request = stamped();
    assert_eq!(request.metadata().get(proto::wire::WIRE_HEADER).unwrap(), "1");
    auth.intercept(request, "Raft").unwrap();
    let mut unmarked = stamped();
    unmarked.metadata_mut().remove(proto::wire::WIRE_HEADER);
    auth.intercept(unmarked, "Raft").expect("nodes from before the header speak version 1");

    let mut newer = stamped();
    newer.metadata_mut().insert(proto::wire::WIRE_HEADER, "99".parse().unwrap());
    let refused = auth.intercept(newer, "Raft").unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("version 99") && refused.message().contains("version 1"), "{}", refused.message());
    assert!(proto::wire::is_wire_refusal(&refused));
    // The sender backs off (openraft's Unreachable) instead of retrying at once.
    assert!(matches!(status_error::<openraft::error::Infallible>(refused), RPCError::Unreachable(_)));
}

#[test]
fn the_budget_halves_after_a_timeout_and_recovers_after_answers() {
    let mut budget = BatchBudget::new(2 << 20);
    assert_eq!(budget.begin(2), 2 << 20);
    budget.answered(true);
    assert_eq!(budget.begin(2), 2 << 20);
    // Dropped by openraft's timeout: never answered.
    assert_eq!(budget.begin(2), 1 << 20);
    assert_eq!(budget.begin(2), 512 << 10);
    budget.answered(false);
    assert_eq!(budget.begin(2), 512 << 10, "an error answer is no timeout");
    budget.answered(true);
    assert_eq!(budget.begin(2), 1 << 20);
    budget.answered(true);
    budget.answered(true);
    assert_eq!(budget.begin(2), 2 << 20, "never above the configured budget");
    for _ in 0..20 {
        budget.begin(2);
    }
    assert_eq!(budget.begin(2), MIN_ADAPTED_BUDGET);
}
