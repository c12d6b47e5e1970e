//! The blob replicator: module zips are not in the raft log, yet every node
//! must hold every zip the catalog references, verified.
//!
//! - [`Replicator`] (`replicator`): the handle the node holds; starts the
//!   tasks below as named `background` workers and answers the gateway
//!   (fetch a lagging blob now, wait for copies, status).
//! - `events`: every catalog entry this node applies that names a blob it
//!   lacks puts the blob in the RocksDB-backed `queue`.
//! - `workers` pull queued blobs from a peer that has them (`pull`:
//!   resumable, throttled, sha256-checked before it becomes visible), and
//!   `placement` reports each copy to the primary, which records it through
//!   raft (`BlobStored`): every node knows where every blob lives.
//! - `anti_entropy` (at start-up, after a snapshot, periodically) compares
//!   the catalog with the local blobs: queues what is missing, re-reports
//!   what placement lacks, deletes blobs no entry references after a grace
//!   period.
//! - `scrub` re-hashes stored blobs at a bounded rate; a corrupt one is
//!   quarantined by the store and queued again. `verify` does a whole pass
//!   on demand (`flotillactl verify`) and repairs before it answers.
//! - `lag`: per-member missing blobs, reported in `api::ReplicationStatus`
//!   (the status types live in crate `api`, which the gateway reads too).
//! - `service` is the `flotilla.v1.Blobs` gRPC service on the cluster port.
//! - `inner`: the state all of these share.

mod anti_entropy;
mod config;
mod error;
mod events;
mod inner;
mod lag;
mod placement;
mod pull;
mod queue;
mod replicator;
mod scrub;
mod service;
mod throttle;
mod verify;
mod workers;

pub use config::{byte_size, parse_bytes, ReplicationConfig};
pub use error::{Error, Result};
pub use queue::{Entry as QueueEntry, QueueStats};
pub use replicator::Replicator;
pub use service::CHUNK;
pub use verify::{Repair, VerifyReport};

#[cfg(test)]
mod gc_tests;
