//! Code generated from `proto/flotilla/v1/*.proto`: the messages and tonic
//! services of the cluster port (raft consensus, blob replication and the
//! admin API).

/// The `flotilla.v1` package.
pub mod v1 {
    tonic::include_proto!("flotilla.v1");
}

pub use v1::admin_client::AdminClient;
pub use v1::admin_server::{Admin, AdminServer};
pub use v1::blobs_client::BlobsClient;
pub use v1::blobs_server::{Blobs, BlobsServer};
pub use v1::raft_client::RaftClient;
pub use v1::raft_server::{Raft, RaftServer};
pub use v1::{AnnounceReply, AnnounceRequest, PurgeReply, PurgeRequest};
pub use v1::{Chunk, FetchRequest, RaftReply, RaftRequest, ReportReply, ReportRequest, StatReply, StatRequest};

pub mod tls;
pub mod wire;

/// An error and its causes, `outer: inner: innermost` (tonic's transport
/// errors hide the reason, e.g. "connection refused", in their sources).
pub fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
