//! Cluster-port connections that say when they close.
//!
//! A primary killed with `kill -9` sends no more heartbeats, but a follower
//! would notice only after a few heartbeat intervals; meanwhile it would
//! send clients to a dead address. The kernel closes a dead process's
//! sockets at once, so the follower learns it from the connection that
//! carried the primary's AppendEntries closing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::network::LeaderCommit;

/// An accepted cluster connection; dropping it (the peer closed it, or the
/// server finished with it) is reported to the leader tracking.
pub struct PeerConn {
    stream: TcpStream,
    peer: Option<SocketAddr>,
    leader: Arc<LeaderCommit>,
    _slot: Option<proto::tls::ConnSlot>,
}

impl PeerConn {
    pub(crate) fn new(stream: TcpStream, leader: Arc<LeaderCommit>, slot: Option<proto::tls::ConnSlot>) -> Self {
        PeerConn { peer: stream.peer_addr().ok(), stream, leader, _slot: slot }
    }
}

impl Drop for PeerConn {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            self.leader.connection_closed(peer);
        }
    }
}

impl Connected for PeerConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for PeerConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
