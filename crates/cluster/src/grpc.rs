//! The cluster gRPC server: raft, blobs and admin on the cluster port.

use std::net::SocketAddr;

use proto::tls::{ClusterTls, ConnLimit, Transport};
use raft::ControlPlane;
use replicator::Replicator;
use tokio::sync::watch;

use crate::admin::AdminService;
use crate::Error;

/// Connections one remote IP address may hold open on the cluster port
/// (nodes use a handful each; tests run every node on one address).
const MAX_CONNECTIONS_PER_IP: usize = 64;
/// Concurrent requests (HTTP/2 streams) on one cluster connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 64;

/// Serves the cluster gRPC port (raft, blobs and admin) until `stop` turns
/// true: over mutual TLS, where a connection reaches the gRPC server only
/// once its certificate names a member (or flotillactl), or in plaintext.
pub async fn serve_grpc(
    control: ControlPlane,
    replicator: Replicator,
    admin: AdminService,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })?;
    let auth = control.auth();
    let tls = match auth.transport() {
        Transport::Tls(tls) => Some(tls.server_config().map_err(Error::Tls)?),
        Transport::Plaintext => {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "the cluster port listens in PLAINTEXT on a non-loopback address (cluster.insecure_plaintext = true): \
                     anyone on the network can read the cluster secret; set cluster.tls_* instead"
                );
            }
            None
        }
    };
    tracing::info!(%addr, tls = tls.is_some(), "cluster port listening");
    // Raft messages and blob chunks are small writes that must not wait for
    // Nagle's algorithm and the peer's delayed ACK (~40 ms each).
    let tracker = control.clone();
    let limit = ConnLimit::new(MAX_CONNECTIONS_PER_IP);
    let incoming = tokio_stream::StreamExt::filter_map(tokio_stream::wrappers::TcpListenerStream::new(listener), move |conn| {
        let stream = match conn {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "accepting a cluster connection failed");
                return None;
            }
        };
        let remote = stream.peer_addr().ok();
        let slot = match remote {
            Some(remote) => match limit.admit(remote.ip()) {
                Some(slot) => Some(slot),
                None => {
                    tracing::warn!(%remote, "refused cluster connection: {MAX_CONNECTIONS_PER_IP} connections from this address are open");
                    return None;
                }
            },
            None => None,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a cluster connection");
        }
        Some((tracker.track_connection(stream, slot), remote))
    });
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(proto::tls::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(proto::tls::KEEPALIVE_TIMEOUT))
        .add_service(control.service())
        .add_service(replicator.service())
        .add_service(admin.server());
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    match tls {
        None => {
            let incoming = tokio_stream::StreamExt::map(incoming, |(conn, _)| Ok::<_, std::io::Error>(conn));
            server.serve_with_incoming_shutdown(incoming, shutdown).await
        }
        Some(config) => {
            // The raft membership of the moment: a node added later is admitted.
            let members = control.clone();
            let identify = move |cert: &proto::tls::CertificateDer<'_>| ClusterTls::identify(cert, members.members());
            server.serve_with_incoming_shutdown(proto::tls::accept(Box::pin(incoming), config, identify), shutdown).await
        }
    }
    .map_err(Error::Serve)
}
