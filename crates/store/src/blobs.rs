//! Content-addressed blob files: `blobs/<aa>/<bb>/<sha256>`.
//!
//! A blob becomes visible only complete and verified: it is written to
//! `tmp/`, fsynced, renamed into place and its directory fsynced. Reads check
//! the content against its name the first time a node opens a blob and again
//! whenever the file changed since (size, mtime, ctime or inode); a blob that
//! does not match is moved to `quarantine/` and reported, never served.
//!
//! Verification of one blob runs once however many readers arrive together
//! (a per-blob lock; late arrivals find it verified), and only the exact file
//! that was hashed is quarantined: a good copy renamed into place meanwhile
//! is left alone. `quarantine/` keeps at most [`QUARANTINE_MAX_FILES`] files
//! and [`QUARANTINE_MAX_BYTES`] bytes, the oldest removed first.
//!
//! Garbage collection never deletes a blob pinned ([`BlobStore::pin`])
//! since its last look at the catalog began ([`BlobStore::gc_begin`]): a
//! fill pins its blob from before it is written until its catalog entry is
//! committed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use sha2::Digest;

use crate::{Error, Result, Sha256};

mod pins;
mod verify;

use pins::Pins;
pub use pins::{BlobPin, GcLock};
pub use verify::{QUARANTINE_MAX_BYTES, QUARANTINE_MAX_FILES};

/// Verification and quarantine of a blob hold one of these locks, chosen by
/// the blob's first byte.
const VERIFY_STRIPES: usize = 64;

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    blobs: PathBuf,
    tmp: PathBuf,
    partial: PathBuf,
    quarantine: PathBuf,
    verified: Mutex<HashMap<Sha256, FileStamp>>,
    /// Per-blob (striped) locks: verifying, quarantining and renaming a blob
    /// into place are serialised per blob.
    stripes: Vec<Mutex<()>>,
    /// Blobs a writer is about to reference, which garbage collection must
    /// not delete.
    pins: Mutex<Pins>,
    /// How many times a blob's content was hashed to verify it on read.
    verifications: AtomicU64,
    quarantine_limits: Mutex<(usize, u64)>,
    count: AtomicU64,
    bytes: AtomicU64,
    temp_seq: AtomicU64,
}

/// What a blob file looked like (size, inode, modification and change
/// times) when its content was verified: a file whose stamp differs may have
/// changed and is verified again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileStamp {
    len: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    /// The stamp of the file at `path` now (`None`: there is none). A
    /// caller that checks one blob often keeps its [`BlobStore::path_of`].
    pub fn at(path: &Path) -> Option<Self> {
        fs::metadata(path).ok().map(|meta| FileStamp::of(&meta))
    }

    fn of(meta: &fs::Metadata) -> Self {
        FileStamp {
            len: meta.len(),
            ino: meta.ino(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlobStats {
    pub count: u64,
    pub bytes: u64,
}

/// A verified blob opened for reading.
pub struct OpenBlob {
    pub file: File,
    pub len: u64,
}

/// A blob file just opened, not yet verified.
struct Found {
    file: File,
    path: PathBuf,
    stamp: FileStamp,
    known_good: bool,
}

/// A verified blob: read whole when small, else opened for streaming.
pub enum BlobContent {
    /// The whole content, and the file it was read from (still open) with
    /// its stamp.
    Whole {
        bytes: Vec<u8>,
        stamp: FileStamp,
        file: File,
    },
    Open(OpenBlob),
}

/// A blob being written. Dropping it without [`BlobStore::commit`] removes the file.
pub struct TempBlob {
    path: PathBuf,
    file: Option<File>,
}

impl TempBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for writing the content.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("temp blob file present until commit")
    }

    /// Takes the file out, e.g. to hand it to an async writer; give it back
    /// with [`TempBlob::put_back`] or just commit by path.
    pub fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    pub fn put_back(&mut self, file: File) {
        self.file = Some(file);
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        self.file.take();
        let _ = fs::remove_file(&self.path);
    }
}

impl BlobStore {
    /// Opens the blob directories under `data_dir`, removes leftovers in
    /// `tmp/` (but not in `partial/`: those are resumable transfers) and
    /// counts what is stored.
    pub fn new(data_dir: &Path) -> Result<Self> {
        let inner = Inner {
            blobs: data_dir.join("blobs"),
            tmp: data_dir.join("tmp"),
            partial: data_dir.join("partial"),
            quarantine: data_dir.join("quarantine"),
            verified: Mutex::new(HashMap::new()),
            stripes: (0..VERIFY_STRIPES).map(|_| Mutex::new(())).collect(),
            pins: Mutex::new(Pins::default()),
            verifications: AtomicU64::new(0),
            quarantine_limits: Mutex::new((QUARANTINE_MAX_FILES, QUARANTINE_MAX_BYTES)),
            count: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            temp_seq: AtomicU64::new(0),
        };
        for dir in [&inner.blobs, &inner.tmp, &inner.partial, &inner.quarantine] {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let removed = clear_dir(&inner.tmp)?;
        if removed > 0 {
            tracing::info!(removed, dir = %inner.tmp.display(), "removed unfinished temp files");
        }
        let store = BlobStore { inner: Arc::new(inner) };
        let stats = store.scan()?;
        store.inner.count.store(stats.count, Ordering::Relaxed);
        store.inner.bytes.store(stats.bytes, Ordering::Relaxed);
        Ok(store)
    }

    pub fn stats(&self) -> BlobStats {
        BlobStats { count: self.inner.count.load(Ordering::Relaxed), bytes: self.inner.bytes.load(Ordering::Relaxed) }
    }

    pub fn path_of(&self, sha: &Sha256) -> PathBuf {
        let hex = sha.to_hex();
        self.inner.blobs.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    pub fn exists(&self, sha: &Sha256) -> bool {
        self.path_of(sha).is_file()
    }

    /// A new empty temp file to write a blob into.
    pub fn temp(&self) -> Result<TempBlob> {
        let seq = self.inner.temp_seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{}-{}.part", std::process::id(), now_nanos(), seq);
        let path = self.inner.tmp.join(name);
        let file = File::options().write(true).read(true).create_new(true).open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(TempBlob { path, file: Some(file) })
    }

    /// Makes a fully written temp file the blob `sha`: fsync, rename into
    /// place, fsync the directory. The content is hashed again here, so a
    /// caller cannot commit bytes under the wrong name.
    pub fn commit(&self, mut temp: TempBlob, sha: &Sha256) -> Result<u64> {
        drop(temp.take_file());
        let len = self.commit_file(&temp.path, sha, None)?;
        Ok(len)
    }

    /// Like [`commit`](Self::commit) for a temp file whose every byte went
    /// through a [`Sha256Writer`](crate::Sha256Writer): `hashed` is what it
    /// computed, so the file is not read again.
    pub fn commit_hashed(&self, mut temp: TempBlob, hashed: Sha256) -> Result<u64> {
        drop(temp.take_file());
        self.commit_file(&temp.path, &hashed, Some(hashed))
    }

    /// Where an interrupted transfer of blob `sha` keeps the bytes it has so
    /// far. Unlike `tmp/`, this survives restarts so a transfer can resume.
    pub fn partial_path(&self, sha: &Sha256) -> PathBuf {
        self.inner.partial.join(sha.to_hex())
    }

    /// Partial transfers on disk, by blob.
    pub fn partials(&self) -> Result<Vec<Sha256>> {
        Ok(read_dir(&self.inner.partial)?.into_iter().filter_map(|p| p.file_name()?.to_str()?.parse().ok()).collect())
    }

    /// Makes the file at `path` (in `tmp/` or `partial/`) the blob `sha`:
    /// fsync, rename into place, fsync the directory. `hashed` is the sha256
    /// the caller computed while writing every byte of the file; without it
    /// the file is hashed here. Either way a mismatch is refused and the file
    /// removed.
    pub fn commit_file(&self, path: &Path, sha: &Sha256, hashed: Option<Sha256>) -> Result<u64> {
        File::open(path).and_then(|f| f.sync_all()).map_err(|e| Error::io(path, e))?;
        let actual = match hashed {
            Some(h) => h,
            None => hash_file(path)?,
        };
        if actual != *sha {
            let _ = fs::remove_file(path);
            return Err(Error::HashMismatch { expected: sha.to_hex(), actual: actual.to_hex() });
        }
        let dest = self.path_of(sha);
        let dir = dest.parent().expect("blob path has a parent");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let _stripe = self.stripe(sha).lock();
        let existed = dest.is_file();
        fs::rename(path, &dest).map_err(|e| Error::io(&dest, e))?;
        sync_dir(dir)?;
        let meta = fs::metadata(&dest).map_err(|e| Error::io(&dest, e))?;
        if !existed {
            self.inner.count.fetch_add(1, Ordering::Relaxed);
            self.inner.bytes.fetch_add(meta.len(), Ordering::Relaxed);
        }
        self.inner.verified.lock().insert(*sha, FileStamp::of(&meta));
        Ok(meta.len())
    }

    /// Every blob stored on this node (not verified), for garbage collection.
    pub fn list(&self) -> Result<Vec<Sha256>> {
        let mut out = Vec::new();
        for a in read_dir(&self.inner.blobs)? {
            for b in read_dir(&a)? {
                for blob in read_dir(&b)? {
                    if let Some(sha) = blob.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) {
                        out.push(sha);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Opens blob `sha` for reading, verifying its content first unless it
    /// was verified before and the file has not changed since. `Ok(None)`:
    /// this node does not have it. `Err(Corrupt)`: it was bad and has been
    /// quarantined.
    pub fn open(&self, sha: &Sha256) -> Result<Option<OpenBlob>> {
        self.retry_replaced(sha, || self.open_once(sha))
    }

    fn open_once(&self, sha: &Sha256) -> Result<Option<OpenBlob>> {
        let Some(found) = self.find(sha)? else { return Ok(None) };
        if !found.known_good {
            self.verify_once(sha, &found.path, &found.stamp, None)?;
        }
        Ok(Some(OpenBlob { file: found.file, len: found.stamp.len }))
    }

    /// Like [`BlobStore::open`], but a blob of at most `whole_up_to` bytes is
    /// read whole in the same call and, when it needs verifying, hashed from
    /// the bytes read: one pass over the file instead of two.
    pub fn read(&self, sha: &Sha256, whole_up_to: u64) -> Result<Option<BlobContent>> {
        self.retry_replaced(sha, || self.read_once(sha, whole_up_to))
    }

    /// Runs a read again (up to twice more) when the copy it found was bad
    /// but has been replaced by another file since: the new file is read.
    fn retry_replaced<T>(&self, sha: &Sha256, mut read: impl FnMut() -> Result<T>) -> Result<T> {
        let live = self.path_of(sha);
        let mut tries = 0;
        loop {
            match read() {
                Err(Error::Corrupt { quarantined, .. }) if quarantined == live && tries < 2 => tries += 1,
                other => return other,
            }
        }
    }

    fn read_once(&self, sha: &Sha256, whole_up_to: u64) -> Result<Option<BlobContent>> {
        let Some(mut found) = self.find(sha)? else { return Ok(None) };
        if found.stamp.len > whole_up_to {
            if !found.known_good {
                self.verify_once(sha, &found.path, &found.stamp, None)?;
            }
            return Ok(Some(BlobContent::Open(OpenBlob { file: found.file, len: found.stamp.len })));
        }
        let mut bytes = Vec::with_capacity(found.stamp.len as usize);
        found.file.read_to_end(&mut bytes).map_err(|e| Error::io(&found.path, e))?;
        if !found.known_good {
            self.verify_once(sha, &found.path, &found.stamp, Some(&bytes))?;
        }
        Ok(Some(BlobContent::Whole { bytes, stamp: found.stamp, file: found.file }))
    }

    /// Opens blob `sha`'s file and tells whether it is as it was when last
    /// verified.
    fn find(&self, sha: &Sha256) -> Result<Option<Found>> {
        let path = self.path_of(sha);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let stamp = FileStamp::of(&file.metadata().map_err(|e| Error::io(&path, e))?);
        let known_good = self.inner.verified.lock().get(sha) == Some(&stamp);
        Ok(Some(Found { file, path, stamp, known_good }))
    }

    /// The current stamp of blob `sha`'s file (`None`: not stored), to tell
    /// whether a copy read earlier still matches the file.
    pub fn stamp(&self, sha: &Sha256) -> Option<FileStamp> {
        FileStamp::at(&self.path_of(sha))
    }

    /// Re-hashes blob `sha` regardless of what is remembered (scrub).
    pub fn verify(&self, sha: &Sha256) -> Result<bool> {
        let path = self.path_of(sha);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let _stripe = self.stripe(sha).lock();
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let actual = hash_file(&path)?;
        self.judge(sha, &path, &FileStamp::of(&meta), actual)?;
        Ok(true)
    }

    /// `Err(reason)` unless the data directory has `need` bytes free on top
    /// of [`crate::MIN_FREE_BYTES`] (kept for the catalog and the raft log).
    pub fn check_space(&self, need: u64) -> std::result::Result<(), crate::DiskFull> {
        let data_dir = self.inner.blobs.parent().unwrap_or(&self.inner.blobs);
        match rustix::fs::statvfs(data_dir).ok().map(|s| s.f_bavail.saturating_mul(s.f_frsize)) {
            Some(free) if free < crate::MIN_FREE_BYTES.saturating_add(need) => {
                Err(crate::DiskFull { data_dir: data_dir.to_path_buf(), free: Some(free) })
            }
            _ => Ok(()),
        }
    }

    /// How many times a blob was hashed to verify it (reads and scrub).
    pub fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }

    pub fn delete(&self, sha: &Sha256) -> Result<bool> {
        let path = self.path_of(sha);
        self.inner.verified.lock().remove(sha);
        match fs::metadata(&path) {
            Ok(meta) => {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                self.forget(meta.len());
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn forget(&self, len: u64) {
        let _ = self.inner.count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(1)));
        let _ = self.inner.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(len)));
    }

    fn scan(&self) -> Result<BlobStats> {
        let mut stats = BlobStats::default();
        for a in read_dir(&self.inner.blobs)? {
            for b in read_dir(&a)? {
                for blob in read_dir(&b)? {
                    if let Ok(meta) = fs::metadata(&blob) {
                        stats.count += 1;
                        stats.bytes += meta.len();
                    }
                }
            }
        }
        Ok(stats)
    }
}

/// sha256 of a file's content, read in 1 MiB chunks.
pub fn hash_file(path: &Path) -> Result<Sha256> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256(hasher.finalize().into()))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    Ok(entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
}

fn clear_dir(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for path in read_dir(dir)? {
        if path.is_dir() {
            fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        } else {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        removed += 1;
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
