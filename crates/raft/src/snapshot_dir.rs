//! Snapshot files in `data_dir/snapshots/`: `<snapshot id>.snap` is a
//! complete snapshot (the current one, and older ones only until a newer one
//! is recorded), `incoming-*.part` a snapshot being received from the
//! leader, `*.tmp` one being written. Files appear under their final name
//! only by an atomic rename after they are synced.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const SNAP: &str = ".snap";
const INCOMING: &str = "incoming-";

pub(crate) struct SnapshotDir {
    dir: PathBuf,
    counter: AtomicU64,
}

impl SnapshotDir {
    /// Opens (creating) `dir` and removes what an earlier run left unfinished.
    pub(crate) fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(INCOMING) || name.ends_with(".tmp") {
                fs::remove_file(&path)?;
            }
        }
        Ok(SnapshotDir { dir, counter: AtomicU64::new(0) })
    }

    /// Where the complete snapshot `snapshot_id` lives.
    pub(crate) fn path_of(&self, snapshot_id: &str) -> PathBuf {
        let safe: String = snapshot_id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        self.dir.join(format!("{safe}{SNAP}"))
    }

    fn unique(&self, prefix: &str, suffix: &str) -> PathBuf {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{prefix}{nanos}-{n}{suffix}"))
    }

    /// A new file to write a snapshot into, and its path.
    pub(crate) fn temp(&self) -> io::Result<(File, PathBuf)> {
        let path = self.unique("build-", ".tmp");
        Ok((File::options().write(true).create_new(true).open(&path)?, path))
    }

    /// A new file (read and write) to receive a snapshot into.
    pub(crate) fn incoming(&self) -> io::Result<File> {
        File::options().read(true).write(true).create_new(true).open(self.unique(INCOMING, ".part"))
    }

    /// The `incoming-*` file that `file` is, if any.
    pub(crate) fn find_incoming(&self, file: &File) -> io::Result<Option<PathBuf>> {
        let (dev, ino) = {
            let m = file.metadata()?;
            (m.dev(), m.ino())
        };
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(INCOMING) {
                continue;
            }
            let m = entry.metadata()?;
            if m.dev() == dev && m.ino() == ino {
                return Ok(Some(entry.path()));
            }
        }
        Ok(None)
    }

    /// Gives a synced file its final name, durably.
    pub(crate) fn publish(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)?;
        File::open(&self.dir)?.sync_all()
    }

    /// Removes every complete snapshot but `keep`, and abandoned transfers.
    /// Readers that still have one open keep reading it (unix semantics).
    pub(crate) fn remove_all_but(&self, keep: &Path) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path != keep && (name.ends_with(SNAP) || name.starts_with(INCOMING)) {
                fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}
