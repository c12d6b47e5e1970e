//! Cluster mode of a node, on top of raft and the replicator:
//!
//! - [`RaftCluster`] (`raft_cluster`): the gateway's `Cluster` seam backed
//!   by the raft control plane and the blob replicator; `announce` keeps
//!   this node's gateway URL recorded through raft.
//! - `marker`: the cluster id (pinned, or derived from the secret) and the
//!   `data_dir/cluster-id` file that ties a data directory to its cluster.
//! - `grpc`: the cluster port's gRPC server (raft, blobs, admin).
//! - [`admin`]: the `flotilla.v1.Admin` service `flotillactl` talks to.
//! - [`Error`]: what stops cluster mode, each with what to do.

pub mod admin;
mod announce;
mod commit;
mod error;
mod grpc;
mod marker;
mod raft_cluster;

pub use error::Error;
pub use grpc::serve_grpc;
pub use marker::{check_marker, id_from_secret, write_marker};
pub use raft_cluster::RaftCluster;
