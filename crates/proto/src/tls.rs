//! How the cluster port is reached and secured: plaintext, or mutual TLS
//! where every node proves who it is with a certificate of the cluster's CA.
//!
//! Every client of the cluster port (raft, blob pulls and placement
//! reports, announcements, admin forwarding, `flotillactl`) builds its
//! channel with [`Transport::endpoint`], so timeouts, keepalive and TLS are
//! set in one place. The server side is [`accept`]: handshakes run
//! concurrently under a deadline, and a connection is handed to the gRPC
//! server only once its certificate names a member (`node-<id>`) or the
//! admin client (`flotillactl`); everything else is refused and logged
//! before a byte of a request is read.
//!
//! Names (DNS subject alternative names of the certificates):
//! - `node-<id>`: node `id` of the cluster (a member of its raft
//!   membership, `cluster.peers` before it is known); a node connecting to node 2
//!   requires the server's certificate to name `node-2`.
//! - `flotilla-node`: on every node certificate too, what `flotillactl`
//!   checks (it talks to whichever node answers).
//! - `flotillactl`: the admin client's certificate.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use rustls::pki_types::CertificateDer;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

mod error;
pub use error::TlsError;

/// The name every node certificate carries besides its own `node-<id>`.
pub const ANY_NODE: &str = "flotilla-node";
/// The name of the admin client's certificate.
pub const CTL_NAME: &str = "flotillactl";

/// Time to connect to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// HTTP/2 pings on every cluster connection, also while idle: a frozen or
/// unreachable peer's connection is dropped after
/// `KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT` instead of hanging calls.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; more wait (in the kernel's backlog).
const MAX_HANDSHAKES: usize = 128;

/// `node-<id>`: the certificate name of node `id`.
pub fn node_name(id: u64) -> String {
    format!("node-{id}")
}

/// Where a node (or `flotillactl`) finds its TLS material.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The cluster CA certificate (PEM): peers must present a certificate it signed.
    pub ca_file: PathBuf,
    /// This node's (or flotillactl's) certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM); must not be readable by group or others.
    pub key_file: PathBuf,
}

/// Loaded TLS material.
pub struct ClusterTls {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls").field("chain", &self.chain.len()).finish_non_exhaustive()
    }
}

/// Refuses a secret file (key, token, cluster secret) that others may
/// read, with the command that fixes it. Group-readable is accepted only
/// for a file owned by root (how Kubernetes mounts secrets with `fsGroup`;
/// the rule PostgreSQL applies to its key).
pub fn check_private(path: &Path, setting: &str) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(path).map_err(|source| TlsError::Read { what: setting.into(), path: path.into(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 || (mode & 0o070 != 0 && meta.uid() != 0) {
            return Err(TlsError::NotPrivate { setting: setting.into(), path: path.into(), mode });
        }
    }
    Ok(())
}

impl ClusterTls {
    /// Reads and checks the three files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let read =
            |path: &Path, what: &str| std::fs::read(path).map_err(|source| TlsError::Read { what: what.into(), path: path.into(), source });
        check_private(&files.key_file, "the TLS key file")?;
        Self::from_pem(
            read(&files.ca_file, "the CA file")?,
            read(&files.cert_file, "the certificate file")?,
            read(&files.key_file, "the TLS key file")?,
        )
        .map_err(|e| TlsError::InFiles { source: Box::new(e), files: files.clone() })
    }

    /// From PEM text: the CA certificate(s), this side's chain and its key.
    pub fn from_pem(ca_pem: Vec<u8>, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Result<Self, TlsError> {
        let certs = |pem: &[u8], what: &'static str| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::NotPem { what, reason: e.to_string() })?;
            if certs.is_empty() {
                return Err(TlsError::NoCertificate { what });
            }
            Ok(certs)
        };
        let ca = certs(&ca_pem, "the CA file")?;
        let chain = certs(&cert_pem, "the certificate file")?;
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| TlsError::NotPem { what: "the key file", reason: e.to_string() })?
            .ok_or(TlsError::NoKey)?;
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| TlsError::UnusableCa { reason: e.to_string() })?;
        }
        Ok(ClusterTls { ca_pem, cert_pem, key_pem, roots: Arc::new(roots), chain, key })
    }

    /// The server side: this node's certificate, and a client certificate
    /// signed by the cluster CA required from every caller.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::CaNotVerifier { reason: e.to_string() })?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Protocol { reason: e.to_string() })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::KeyMismatch { reason: e.to_string() })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// Who the end-entity certificate `cert` names, among `members`.
    pub fn identify(cert: &CertificateDer<'_>, members: impl IntoIterator<Item = u64>) -> PeerIdentity {
        let Ok(cert) = webpki::EndEntityCert::try_from(cert) else {
            return PeerIdentity::Stranger("an unparsable certificate".into());
        };
        let names = |name: &str| ServerName::try_from(name.to_owned()).is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok());
        let nodes: Vec<u64> = members.into_iter().filter(|&id| names(&node_name(id))).collect();
        match nodes[..] {
            [id] => PeerIdentity::Node(id),
            [] if names(CTL_NAME) => PeerIdentity::Ctl,
            [] => PeerIdentity::Stranger("a certificate that names no member of the cluster".into()),
            _ => PeerIdentity::Stranger(format!("a certificate that names several members ({nodes:?})")),
        }
    }
}

/// Whether the first certificate of `cert_pem` names node `id`.
pub fn pem_names_node(cert_pem: &[u8], id: u64) -> bool {
    let cert = rustls_pemfile::certs(&mut &cert_pem[..]).next().and_then(|c| c.ok());
    cert.is_some_and(|c| ClusterTls::identify(&c, [id]) == PeerIdentity::Node(id))
}

/// Who is on the other end of a cluster connection, from its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerIdentity {
    /// A member of the cluster (one of the ids it was asked about).
    Node(u64),
    /// The admin client.
    Ctl,
    /// Anyone else (why, in words).
    Stranger(String),
}

/// How this process reaches the cluster port.
#[derive(Clone, Debug)]
pub enum Transport {
    /// `cluster.insecure_plaintext = true`: no TLS; the secret travels in clear.
    Plaintext,
    /// Mutual TLS with the cluster CA.
    Tls(Arc<ClusterTls>),
}

impl Transport {
    /// The one way to build a channel to a cluster port at `addr`
    /// (`host:port`) whose certificate must name `server_name` (`node-<id>`
    /// or [`ANY_NODE`]): connect timeout, TCP_NODELAY, HTTP/2 keepalive.
    /// Callers add a per-call deadline (`Endpoint::timeout` or the
    /// request's own).
    pub fn endpoint(&self, addr: &str, server_name: &str) -> Result<Endpoint, TlsError> {
        let scheme = match self {
            Transport::Plaintext => "http",
            Transport::Tls(_) => "https",
        };
        let addr = addr.trim();
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| TlsError::BadAddress { addr: addr.to_string(), reason: e.to_string() })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        match self {
            Transport::Plaintext => Ok(endpoint),
            Transport::Tls(tls) => {
                let config = ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
                    .domain_name(server_name)
                    .timeout(HANDSHAKE_TIMEOUT);
                endpoint.tls_config(config).map_err(|e| TlsError::ClientTls { addr: addr.to_string(), reason: e.to_string() })
            }
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }
}

/// Accepted cluster connections over TLS: `incoming` yields raw
/// connections with their remote address; each is handshaken (at most
/// [`MAX_HANDSHAKES`] at once, each within a deadline) and passed on only
/// when `identify` finds the client's certificate names a member or the
/// admin client (`PeerIdentity::Node`/`Ctl`; a `Stranger` says why not).
/// Refusals are logged with the remote address. Ends when `incoming` ends
/// or the returned stream is dropped.
pub fn accept<IO, S>(
    mut incoming: S,
    config: Arc<ServerConfig>,
    identify: impl Fn(&CertificateDer<'_>) -> PeerIdentity + Send + Sync + 'static,
) -> impl tokio_stream::Stream<Item = io::Result<TlsStream<IO>>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tokio_stream::Stream<Item = (IO, Option<SocketAddr>)> + Unpin + Send + 'static,
{
    use tokio_stream::StreamExt;
    let (tx, rx) = mpsc::channel(32);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let identify = Arc::new(identify);
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = incoming.next() => next,
                _ = tx.closed() => None,
            };
            let Some((io, remote)) = next else { return };
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let (acceptor, identify, tx) = (acceptor.clone(), identify.clone(), tx.clone());
            tokio::spawn(async move {
                let remote = remote.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::warn!(%remote, error = %e, "refused cluster connection: TLS handshake failed (a certificate of another CA, or none?)");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%remote, "refused cluster connection: TLS handshake did not finish within {HANDSHAKE_TIMEOUT:?}");
                        return;
                    }
                };
                drop(permit);
                let peer = match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    Some(cert) => identify(cert),
                    None => PeerIdentity::Stranger("no client certificate".into()),
                };
                if let PeerIdentity::Stranger(why) = peer {
                    tracing::warn!(%remote, %why, "refused cluster connection: the certificate does not name a member of the cluster (its raft membership)");
                    return;
                }
                let _ = tx.send(Ok(stream)).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// The node id (or admin client) a cluster connection's client
/// certificate names; `None` on a plaintext connection.
pub fn peer_identity<T>(request: &tonic::Request<T>, members: impl IntoIterator<Item = u64>) -> Option<PeerIdentity> {
    let certs = request.peer_certs()?;
    Some(match certs.first() {
        Some(cert) => ClusterTls::identify(cert, members),
        None => PeerIdentity::Stranger("no client certificate".into()),
    })
}

/// Limits connections per remote IP address.
#[derive(Clone)]
pub struct ConnLimit {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection; its slot is freed when dropped.
pub struct ConnSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnLimit {
    pub fn new(max: usize) -> Self {
        ConnLimit { max, open: Default::default() }
    }

    /// A slot for a new connection from `ip`, or `None` when it already has `max`.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot { ip, open: self.open.clone() })
    }
}

#[cfg(test)]
mod tests;
