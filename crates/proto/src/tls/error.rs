//! Why TLS material or a cluster address could not be used.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::TlsFiles;

/// What went wrong loading TLS material or building a channel; each
/// message names the file or address and, where there is one, the fix.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read (`what` names the setting or role).
    Read { what: String, path: PathBuf, source: io::Error },
    /// A secret file that group or others may read.
    NotPrivate { setting: String, path: PathBuf, mode: u32 },
    /// A file that should hold PEM does not parse.
    NotPem { what: &'static str, reason: String },
    /// A certificate file without a certificate.
    NoCertificate { what: &'static str },
    /// The key file holds no private key.
    NoKey,
    /// The CA file holds a certificate rustls cannot use as a root.
    UnusableCa { reason: String },
    /// The CA certificates cannot verify clients.
    CaNotVerifier { reason: String },
    /// rustls refused the protocol versions.
    Protocol { reason: String },
    /// The certificate and the key are not a pair.
    KeyMismatch { reason: String },
    /// An error of the files named (what `ClusterTls::load` reports).
    InFiles { source: Box<TlsError>, files: TlsFiles },
    /// A cluster address that is not `host:port`.
    BadAddress { addr: String, reason: String },
    /// tonic refused the client TLS settings for `addr`.
    ClientTls { addr: String, reason: String },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { what, path, source } => write!(f, "cannot read {what} {}: {source}", path.display()),
            TlsError::NotPrivate { setting, path, mode } => write!(
                f,
                "{setting} {} is readable by {} (mode {mode:03o}); it holds a secret: run `chmod 600 {}`",
                path.display(),
                if mode & 0o007 != 0 { "everyone" } else { "its group" },
                path.display()
            ),
            TlsError::NotPem { what, reason } => write!(f, "{what} is not PEM: {reason}"),
            TlsError::NoCertificate { what } => write!(f, "{what} holds no PEM certificate"),
            TlsError::NoKey => f.write_str("the key file holds no PEM private key"),
            TlsError::UnusableCa { reason } => write!(f, "the CA file holds an unusable certificate: {reason}"),
            TlsError::CaNotVerifier { reason } => write!(f, "cannot use the CA file: {reason}"),
            TlsError::Protocol { reason } => f.write_str(reason),
            TlsError::KeyMismatch { reason } => write!(f, "the certificate and key do not fit together: {reason}"),
            TlsError::InFiles { source, files } => write!(
                f,
                "{source} (ca_file {}, cert_file {}, key_file {})",
                files.ca_file.display(),
                files.cert_file.display(),
                files.key_file.display()
            ),
            TlsError::BadAddress { addr, reason } => write!(f, "{addr:?} is not a host:port address: {reason}"),
            TlsError::ClientTls { addr, reason } => write!(f, "TLS settings for {addr}: {reason}"),
        }
    }
}

/// The message already holds every cause, so none is chained.
impl std::error::Error for TlsError {}
