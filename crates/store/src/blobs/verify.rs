//! Verifying a blob on its first read (once, under the blob's stripe lock)
//! and moving a bad copy to a bounded `quarantine/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use sha2::Digest;

use super::{BlobStore, FileStamp, VERIFY_STRIPES};
use crate::{Error, Result, Sha256};

/// At most this many files are kept in `quarantine/` (oldest removed first).
pub const QUARANTINE_MAX_FILES: usize = 64;
/// At most this many bytes are kept in `quarantine/` (oldest removed first).
pub const QUARANTINE_MAX_BYTES: u64 = 4 << 30;

impl BlobStore {
    /// Changes the quarantine bounds (files, bytes); for tests and tuning.
    pub fn set_quarantine_limits(&self, files: usize, bytes: u64) {
        *self.inner.quarantine_limits.lock() = (files, bytes);
    }

    pub(super) fn stripe(&self, sha: &Sha256) -> &Mutex<()> {
        &self.inner.stripes[sha.0[0] as usize % VERIFY_STRIPES]
    }

    /// Verifies the file found for `sha` unless a reader that held the
    /// blob's lock before us already verified this very file; `bytes`: its
    /// content when already read whole.
    pub(super) fn verify_once(&self, sha: &Sha256, path: &Path, stamp: &FileStamp, bytes: Option<&[u8]>) -> Result<()> {
        let _stripe = self.stripe(sha).lock();
        if self.inner.verified.lock().get(sha) == Some(stamp) {
            return Ok(());
        }
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let actual = match bytes {
            Some(bytes) => Sha256(sha2::Sha256::digest(bytes).into()),
            None => super::hash_file(path)?,
        };
        #[cfg(test)]
        super::tests::after_hash();
        self.judge(sha, path, stamp, actual)
    }

    /// Remembers the file as good when `actual` is its address, else
    /// quarantines it, if it is still the file that was hashed (`stamp`).
    /// Called with the blob's stripe lock held.
    pub(super) fn judge(&self, sha: &Sha256, path: &Path, stamp: &FileStamp, actual: Sha256) -> Result<()> {
        if actual == *sha {
            self.inner.verified.lock().insert(*sha, *stamp);
            return Ok(());
        }
        let quarantined = self.inner.quarantine.join(format!("{}.{:030}", sha.to_hex(), super::now_nanos()));
        let current = fs::metadata(path).ok().map(|meta| FileStamp::of(&meta));
        if current.as_ref() != Some(stamp) {
            // Another copy replaced the bad one since it was opened: leave
            // the new file alone (`retry_replaced` reads and verifies it).
            // `quarantined` names the live path to say so.
            tracing::warn!(blob = %sha, actual = %actual, "a corrupt copy was read, but the file has been replaced since; not quarantined");
            return Err(Error::Corrupt { expected: sha.to_hex(), actual: actual.to_hex(), quarantined: path.to_path_buf() });
        }
        self.inner.verified.lock().remove(sha);
        fs::rename(path, &quarantined).map_err(|e| Error::io(path, e))?;
        self.forget(stamp.len);
        self.prune_quarantine();
        tracing::error!(
            blob = %sha, actual = %actual, quarantined = %quarantined.display(),
            "corrupt blob: content does not match its sha256; moved aside and will not be served"
        );
        Err(Error::Corrupt { expected: sha.to_hex(), actual: actual.to_hex(), quarantined })
    }

    /// Removes the oldest quarantined files beyond the bounds.
    pub(super) fn prune_quarantine(&self) {
        let (max_files, max_bytes) = *self.inner.quarantine_limits.lock();
        let Ok(entries) = super::read_dir(&self.inner.quarantine) else { return };
        // Names end in a zero-padded nanosecond time: sorting by the part
        // after the last dot puts the oldest first.
        let mut files: Vec<(String, PathBuf, u64)> = entries
            .into_iter()
            .filter_map(|p| {
                let len = fs::symlink_metadata(&p).ok().filter(|m| m.is_file())?.len();
                let name = p.file_name()?.to_str()?.to_string();
                let key = name.rsplit('.').next().unwrap_or("").to_string();
                Some((key, p, len))
            })
            .collect();
        files.sort();
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        let mut count = files.len();
        for (_, path, len) in files {
            if count <= max_files && total <= max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                tracing::info!(removed = %path.display(), "quarantine full: removed its oldest file");
            }
            count -= 1;
            total = total.saturating_sub(len);
        }
    }
}
