//! The crate's single error type.

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Longest user-supplied string an error message repeats in full.
const MAX_QUOTED: usize = 256;

/// Everything that can be wrong with a Go module input. `Display` is one line
/// that names the bad part.
///
/// `InvalidVersion`'s `reason` is a predicate about the version, printed as
/// `version "<version>" <reason>`, e.g. `is not canonical (canonical form is v1.2.0)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid module path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("version {version:?} {reason}")]
    InvalidVersion { version: String, reason: String },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid module zip: {0}")]
    InvalidZip(String),
    #[error("invalid .info: {0}")]
    InvalidInfo(String),
    #[error("invalid go.mod: {0}")]
    InvalidGoMod(String),
    /// Checksum database formats and proofs; the message names what.
    #[error("{0}")]
    Sumdb(String),
    /// A GOPRIVATE-style glob list that would match nothing; the message
    /// says how to write it.
    #[error("{0}")]
    InvalidPattern(String),
}

impl Error {
    pub(crate) fn path(path: &str, reason: impl Into<String>) -> Self {
        Error::InvalidPath { path: clip(path), reason: reason.into() }
    }

    pub(crate) fn version(version: &str, reason: impl Into<String>) -> Self {
        Error::InvalidVersion { version: clip(version), reason: reason.into() }
    }
}

/// Shortens `s` to at most [`MAX_QUOTED`] bytes (on a char boundary), marking the cut.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= MAX_QUOTED {
        return s.to_string();
    }
    let mut end = MAX_QUOTED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
