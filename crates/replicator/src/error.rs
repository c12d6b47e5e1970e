//! What can go wrong in the replicator. `Clone`, because one pull's result
//! is shared by every caller waiting for the same blob (singleflight); the
//! foreign errors it wraps are behind an `Arc` for that reason.

use std::path::PathBuf;
use std::sync::Arc;

use store::Sha256;

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// An invalid `[replication]` setting; the message names it.
    #[error("{0}")]
    Config(String),
    /// A file of this node (a partial blob) could not be used; `doing` is
    /// empty or ends with a space.
    #[error("{doing}{}: {source}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// This node's store failed; `doing` says at what.
    #[error("{doing}: {source}")]
    Store {
        doing: &'static str,
        #[source]
        source: Arc<store::Error>,
    },
    /// A blocking task ended without an answer (it panicked or the runtime
    /// is shutting down).
    #[error("{what} task failed: {reason}")]
    Task { what: &'static str, reason: String },
    #[error("node {0} is not a cluster member (no cluster address known)")]
    UnknownPeer(u64),
    #[error("bad address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
    /// A peer could not supply (the rest of) a blob; the message says why.
    #[error("{0}")]
    Peer(String),
    /// No peer supplied the whole blob: what arrived and what each peer said.
    #[error("have {have} of {size} bytes: {tried}")]
    Incomplete { have: u64, size: u64, tried: String },
    /// Every byte arrived but they hash to something else; they were discarded.
    #[error("the {size} bytes received hash to {actual}; discarded, will fetch again")]
    Mismatch { size: u64, actual: Sha256 },
    /// The data directory has no room for the blob; retried later.
    #[error("{0}")]
    DiskFull(#[from] store::DiskFull),
    /// Placement could not be reported to the primary.
    #[error("{0}")]
    Report(String),
    #[error(transparent)]
    Propose(#[from] raft::ProposeError),
    /// A corrupt copy on a single node, which has no peer to repair it from.
    #[error("quarantined; a single node has no peer to copy from: the next request for it fetches it from upstream again")]
    NoPeer,
}

impl Error {
    pub(crate) fn io(doing: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { doing, path: path.to_path_buf(), source: Arc::new(source) }
    }

    pub(crate) fn store(doing: &'static str, source: store::Error) -> Self {
        Error::Store { doing, source: Arc::new(source) }
    }

    pub(crate) fn task(what: &'static str, e: tokio::task::JoinError) -> Self {
        Error::Task { what, reason: e.to_string() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
