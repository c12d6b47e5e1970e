/// Why the control plane could not start, or could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error(
        "data_dir belongs to cluster {stored:?}, this node is configured for cluster {configured:?}; \
         use an empty data_dir or the right configuration"
    )]
    WrongCluster { stored: String, configured: String },
    #[error("raft storage: {0}")]
    Store(#[from] store::Error),
    #[error("starting raft: {0}")]
    Start(String),
    /// No leader is known, so there is no primary to ask.
    #[error("no primary known yet")]
    NoPrimary,
    #[error("no cluster address known for the primary, node {0}")]
    UnknownPrimary(u64),
    #[error("bad address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("cannot reach the primary, node {node} at {addr}: {reason}")]
    Unreachable { node: u64, addr: String, reason: String },
    /// The primary answered with an error.
    #[error("node {node}: {message}")]
    Refused { node: u64, message: String },
    #[error(transparent)]
    Propose(#[from] ProposeError),
}

/// Why a proposal was not committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader proposes; `leader` is the one this node knows of, if any.
    #[error("this node is not the raft leader (leader: {})", leader.map_or("unknown".to_string(), |id| format!("node {id}")))]
    NotLeader { leader: Option<u64> },
    /// No commit in time: the leader may be cut off from the majority.
    #[error("the proposal was not committed in time")]
    Timeout,
    /// The command's entry would be `bytes` long, more than one
    /// AppendEntries carries in time (`limit`): it is not proposed.
    #[error("the entry would be {bytes} bytes, more than the {limit} a raft entry may have")]
    TooLarge { bytes: usize, limit: usize },
    #[error("raft failed: {0}")]
    Fatal(String),
}
