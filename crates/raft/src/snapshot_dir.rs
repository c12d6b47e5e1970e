//! Snapshot files in `data_dir/snapshots/`: `<snapshot id>.snap` is a
//! complete snapshot (the current one, the one being installed, and older
//! ones only until a newer one is recorded), `incoming-*.part` a snapshot
//! being received from the leader, `build-*.tmp` one being written. Files
//! appear under their final name only by an atomic rename after they are
//! synced, so a crash at any point leaves complete `.snap` files and
//! partial ones under other names, which start-up removes.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SNAP: &str = ".snap";
const INCOMING: &str = "incoming-";
/// A transfer not written to for this long was abandoned (its leader went
/// away): a live one receives a chunk at least every install timeout (2 min).
const ABANDONED: Duration = Duration::from_secs(600);

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

    /// Removes every complete snapshot but those in `keep` (the current one
    /// and the one an install is reading), and transfers abandoned for
    /// [`ABANDONED`]. A transfer in progress, or a file being built, is never
    /// removed here. Readers that still have a removed file open keep
    /// reading it (unix semantics).
    pub(crate) fn remove_all_but(&self, keep: &[&Path]) -> io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let remove = if name.ends_with(SNAP) {
                !keep.contains(&path.as_path())
            } else if name.starts_with(INCOMING) {
                let idle = entry.metadata()?.modified().ok().and_then(|at| at.elapsed().ok());
                idle.is_some_and(|idle| idle > ABANDONED)
            } else {
                false
            };
            if remove {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_keeps_what_it_is_told_and_transfers_until_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotDir::open(dir.path().join("s")).unwrap();
        let (current, installing, old) = (snapshots.path_of("cur"), snapshots.path_of("inst"), snapshots.path_of("old"));
        for path in [&current, &installing, &old] {
            fs::write(path, b"x").unwrap();
        }
        drop(snapshots.incoming().unwrap());
        drop(snapshots.incoming().unwrap());
        let (_, building) = snapshots.temp().unwrap();
        let mut incoming: Vec<PathBuf> = fs::read_dir(dir.path().join("s"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(INCOMING))
            .collect();
        incoming.sort();
        let long_ago = SystemTime::now() - ABANDONED - Duration::from_secs(60);
        File::options().write(true).open(&incoming[0]).unwrap().set_modified(long_ago).unwrap();

        snapshots.remove_all_but(&[&current, &installing]).unwrap();
        assert!(current.is_file() && installing.is_file() && building.is_file());
        assert!(!old.exists());
        assert!(!incoming[0].exists(), "abandoned transfer");
        assert!(incoming[1].is_file(), "transfer in progress");
    }
}
