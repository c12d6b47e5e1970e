//! What can stop cluster mode.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use proto::tls::TlsError;

/// Why cluster mode cannot start or run; each message says what to do.
#[derive(Debug)]
pub enum Error {
    /// `data_dir` records another cluster's id.
    OtherCluster { data_dir: PathBuf, stored: String, configured: String },
    /// The `cluster-id` marker cannot be written.
    WriteMarker { path: PathBuf, source: io::Error },
    /// The cluster port cannot be bound.
    Listen { addr: SocketAddr, source: io::Error },
    /// This node's TLS material cannot serve.
    Tls(TlsError),
    /// The gRPC server stopped with an error.
    Serve(tonic::transport::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OtherCluster { data_dir, stored, configured } => write!(
                f,
                "data_dir {} belongs to cluster {stored:?}, this node is configured for cluster {configured:?}; \
                 use an empty data_dir, or, if you rotated the cluster secret of this cluster, set cluster.id = {stored:?} \
                 on every node (the id then stays, whatever the secret)",
                data_dir.display()
            ),
            Error::WriteMarker { path, source } => write!(f, "cannot write {}: {source}", path.display()),
            Error::Listen { addr, source } => write!(f, "cannot listen on {addr} (cluster.listen): {source}"),
            Error::Tls(e) => write!(f, "cluster TLS: {e}"),
            Error::Serve(e) => write!(f, "cluster gRPC server failed: {}", proto::with_sources(e)),
        }
    }
}

/// The message holds every cause, so none is chained.
impl std::error::Error for Error {}
