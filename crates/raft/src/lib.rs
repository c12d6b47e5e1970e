//! Flotilla's raft control plane: the catalog replicated with openraft.
//!
//! - `types`: what the log carries ([`Command`]) and who is in the cluster.
//! - `log_store`, `state_machine`: openraft's storage on the node's RocksDB;
//!   the state machine *is* the catalog column family.
//! - `network`: the gRPC transport between nodes (`flotilla.v1.Raft`).
//! - [`ControlPlane`]: the facade the node, gateway and replicator use.

// openraft's StorageError and RaftError are large by design; the storage
// traits return them, so do the helpers around them.
#![allow(clippy::result_large_err)]

mod codec;
mod config;
mod control_plane;
mod error;
mod log_store;
mod network;
mod peer_conn;
mod snapshot;
mod snapshot_dir;
mod state_machine;
mod status;
mod types;

pub use config::{
    RaftConfig, RaftSettings, DEFAULT_ELECTION_TIMEOUT_MAX, DEFAULT_ELECTION_TIMEOUT_MIN, DEFAULT_HEARTBEAT, DEFAULT_SNAPSHOT_EVERY,
    MAX_COMMAND_BYTES,
};
pub use control_plane::ControlPlane;
pub use error::{Error, ProposeError};
pub use network::ClusterAuth;
pub use peer_conn::PeerConn;
pub use status::{RaftStatus, Role};
pub use store::AuditRecord;
pub use types::{Applied, ClusterNode, Command, StateEvent};

/// openraft's storage traits as implemented here, for openraft's
/// conformance suite (`openraft::testing::Suite`); the rest of Flotilla uses
/// [`ControlPlane`].
pub mod storage {
    pub use crate::log_store::LogStore;
    pub use crate::state_machine::StateMachine;
    pub use crate::types::TypeConfig;
}
