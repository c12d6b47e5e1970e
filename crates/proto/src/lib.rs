//! Code generated from `proto/flotilla/v1/*.proto`: the messages and tonic
//! services of the cluster port (raft consensus and blob replication).

/// The `flotilla.v1` package.
pub mod v1 {
    tonic::include_proto!("flotilla.v1");
}

pub use v1::blobs_client::BlobsClient;
pub use v1::blobs_server::{Blobs, BlobsServer};
pub use v1::raft_client::RaftClient;
pub use v1::raft_server::{Raft, RaftServer};
pub use v1::{Chunk, FetchRequest, RaftReply, RaftRequest, ReportReply, ReportRequest, StatReply, StatRequest};
