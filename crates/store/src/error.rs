use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("database: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("catalog record {key:?} is unreadable: {reason}")]
    Decode { key: String, reason: String },
    #[error("corrupt blob {expected}: content hashes to {actual}; moved to {quarantined}")]
    Corrupt { expected: String, actual: String, quarantined: PathBuf },
    #[error("blob content hashes to {actual}, expected {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("invalid sha256 {0:?}: want 64 lowercase hex digits")]
    InvalidSha(String),
    /// The data directory is of a format this binary does not read.
    #[error("{}: {reason}", data_dir.display())]
    Format { data_dir: PathBuf, reason: String },
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}
