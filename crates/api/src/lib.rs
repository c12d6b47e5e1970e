//! What a node reports about itself, as types: the cluster part of
//! `/api/v1/status` (`cluster`), the replication facts in it and the answer
//! of `/api/v1/blobs/{sha256}` (`replication`), and its background workers
//! (`workers`, built by crate `background`). The crates that know these
//! facts (raft, the replicator, the node's `RaftCluster`) build them; the
//! gateway serves, renders and measures them. Neither side depends on the
//! other: both depend on this crate, which depends on serde only.
//!
//! Each type serialises to the JSON keys the status endpoints have always
//! shown; keys are added, never removed.

mod cluster;
mod replication;
mod size;
mod workers;

pub use cluster::{ClusterFacts, ClusterStatus, Member, RaftRole};
pub use replication::{BlobStatus, Lag, NodeLag, QueueStatus, QueuedBlob, ReplicationStatus};
pub use size::{byte_size, parse_bytes, SizeError};
pub use workers::{WorkerState, WorkerStatus};
