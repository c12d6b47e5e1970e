//! How raft values are laid out in RocksDB: log keys are big-endian indexes
//! (so key order is log order), values are JSON.

use openraft::{AnyError, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::StorageError;

pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The encoded (JSON) size of `value`, without keeping the bytes.
pub(crate) fn encoded_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; a value that does not serialize
    // fails again, with its error, when the request is encoded.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| StorageIOError::write(&e).into())
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageIOError::read(AnyError::new(&e).add_context(|| format!("decoding {what}"))).into())
}

/// Maps a database error on a read to openraft's storage error.
pub(crate) fn read_err(e: store::Error) -> StorageError {
    StorageIOError::read(&e).into()
}

/// Maps a database error on a write to openraft's storage error.
pub(crate) fn write_err(e: store::Error) -> StorageError {
    StorageIOError::write(&e).into()
}
