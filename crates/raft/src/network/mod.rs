//! The raft transport: a tonic client per peer for openraft, and the
//! `flotilla.v1.Raft` service that hands incoming RPCs to the local raft.
//!
//! Every RPC carries the cluster secret (`x-flotilla-secret`) and the cluster
//! id (`x-flotilla-cluster`); the server also admits only members: the raft
//! membership (voters and learners) once known, `cluster.peers` before.
//!
//! - `auth`: [`ClusterAuth`], the credentials and the interceptor that
//!   checks them before a request body is read.
//! - `client`: openraft's per-peer clients ([`Network`]).
//! - `batch`: the byte budget of AppendEntries and cutting a batch to it.
//! - `server`: the `flotilla.v1.Raft` service ([`RaftService`]) and what it
//!   hears from leaders ([`LeaderCommit`]).

mod auth;
mod batch;
mod client;
mod server;

pub use auth::ClusterAuth;
pub(crate) use client::Network;
pub(crate) use server::{LeaderCommit, RaftService};

/// An AppendEntries batch or a snapshot chunk may exceed tonic's 4 MiB default.
pub(crate) const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// Header with the leader's own commit index on AppendEntries: the request's
/// `leader_commit` is clamped to the entries it carries, but a follower's
/// readiness wants to know how far the cluster really is.
const LEADER_COMMIT_HEADER: &str = "x-flotilla-leader-commit";

#[cfg(test)]
mod tests;
