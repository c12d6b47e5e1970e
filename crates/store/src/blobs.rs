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

/// At most this many files are kept in `quarantine/` (oldest removed first).
pub const QUARANTINE_MAX_FILES: usize = 64;
/// At most this many bytes are kept in `quarantine/` (oldest removed first).
pub const QUARANTINE_MAX_BYTES: u64 = 4 << 30;
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
    /// The whole content, and the stamp of the file it was read from.
    Whole {
        bytes: Vec<u8>,
        stamp: FileStamp,
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
        Ok(Some(BlobContent::Whole { bytes, stamp: found.stamp }))
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
        fs::metadata(self.path_of(sha)).ok().map(|meta| FileStamp::of(&meta))
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

    /// Keeps blob `sha` from garbage collection until the pin is dropped,
    /// and from the collection pass under way (see [`BlobStore::gc_begin`]).
    pub fn pin(&self, sha: &Sha256) -> BlobPin {
        let mut pins = self.inner.pins.lock();
        *pins.count.entry(*sha).or_insert(0) += 1;
        pins.touched.insert(*sha);
        BlobPin { store: self.clone(), sha: *sha }
    }

    /// Called by garbage collection just before its last look at the
    /// catalog: forgets which blobs were pinned before. A blob pinned or
    /// unpinned from now on is not deleted by this pass (its catalog entry
    /// may have been committed after that look); one whose pin ended before
    /// had its entry committed before, so the look sees it.
    pub fn gc_begin(&self) {
        self.inner.pins.lock().touched.clear();
    }

    /// Held by garbage collection while it deletes; see
    /// [`GcLock::delete_unpinned`].
    pub fn gc_lock(&self) -> GcLock<'_> {
        GcLock { store: self, pins: self.inner.pins.lock() }
    }

    /// Changes the quarantine bounds (files, bytes); for tests and tuning.
    pub fn set_quarantine_limits(&self, files: usize, bytes: u64) {
        *self.inner.quarantine_limits.lock() = (files, bytes);
    }

    fn stripe(&self, sha: &Sha256) -> &Mutex<()> {
        &self.inner.stripes[sha.0[0] as usize % VERIFY_STRIPES]
    }

    /// Verifies the file found for `sha` unless a reader that held the
    /// blob's lock before us already verified this very file; `bytes`: its
    /// content when already read whole.
    fn verify_once(&self, sha: &Sha256, path: &Path, stamp: &FileStamp, bytes: Option<&[u8]>) -> Result<()> {
        let _stripe = self.stripe(sha).lock();
        if self.inner.verified.lock().get(sha) == Some(stamp) {
            return Ok(());
        }
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let actual = match bytes {
            Some(bytes) => Sha256(sha2::Sha256::digest(bytes).into()),
            None => hash_file(path)?,
        };
        #[cfg(test)]
        tests::after_hash();
        self.judge(sha, path, stamp, actual)
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

    /// Remembers the file as good when `actual` is its address, else
    /// quarantines it, if it is still the file that was hashed (`stamp`).
    /// Called with the blob's stripe lock held.
    fn judge(&self, sha: &Sha256, path: &Path, stamp: &FileStamp, actual: Sha256) -> Result<()> {
        if actual == *sha {
            self.inner.verified.lock().insert(*sha, *stamp);
            return Ok(());
        }
        let quarantined = self.inner.quarantine.join(format!("{}.{:030}", sha.to_hex(), now_nanos()));
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
    fn prune_quarantine(&self) {
        let (max_files, max_bytes) = *self.inner.quarantine_limits.lock();
        let Ok(entries) = read_dir(&self.inner.quarantine) else { return };
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

/// A blob garbage collection must not delete; see [`BlobStore::pin`].
pub struct BlobPin {
    store: BlobStore,
    sha: Sha256,
}

impl Drop for BlobPin {
    fn drop(&mut self) {
        let mut pins = self.store.inner.pins.lock();
        pins.touched.insert(self.sha);
        if let Some(n) = pins.count.get_mut(&self.sha) {
            *n -= 1;
            if *n == 0 {
                pins.count.remove(&self.sha);
            }
        }
    }
}

/// Pinned blobs (how many pins each) and those pinned or unpinned since
/// the collection pass under way began.
#[derive(Default)]
struct Pins {
    count: HashMap<Sha256, usize>,
    touched: std::collections::HashSet<Sha256>,
}

/// Garbage collection's hold on the blob store; see [`BlobStore::gc_lock`].
pub struct GcLock<'a> {
    store: &'a BlobStore,
    pins: parking_lot::MutexGuard<'a, Pins>,
}

impl GcLock<'_> {
    /// Deletes blob `sha` unless it is pinned or was pinned since
    /// [`BlobStore::gc_begin`]; `Ok(true)` when deleted.
    pub fn delete_unpinned(&self, sha: &Sha256) -> Result<bool> {
        if self.pins.count.contains_key(sha) || self.pins.touched.contains(sha) {
            return Ok(false);
        }
        self.store.delete(sha)
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
mod tests {
    //! Verification once per blob, a quarantine that catches only the file
    //! hashed, and a bounded quarantine directory.

    use std::cell::RefCell;
    use std::io::Write;
    use std::sync::{Arc, Barrier};

    use super::*;

    thread_local! {
        static AFTER_HASH: RefCell<Option<Box<dyn FnMut()>>> = RefCell::new(None);
    }

    /// Test hook: runs in the verifying thread between hashing and judging.
    pub(super) fn after_hash() {
        AFTER_HASH.with(|hook| {
            if let Some(hook) = hook.borrow_mut().as_mut() {
                hook();
            }
        });
    }

    fn put(store: &BlobStore, content: &[u8]) -> Sha256 {
        let sha = Sha256::of(content);
        let mut temp = store.temp().unwrap();
        temp.file().write_all(content).unwrap();
        store.commit(temp, &sha).unwrap();
        sha
    }

    fn corrupt(store: &BlobStore, sha: &Sha256, content: &[u8]) {
        // A new inode, so nothing remembered about the old file applies.
        let path = store.path_of(sha);
        fs::remove_file(&path).unwrap();
        fs::write(&path, content).unwrap();
    }

    #[test]
    fn first_read_verification_runs_once_for_readers_arriving_together() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..32u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let sha = put(&BlobStore::new(dir.path()).unwrap(), &content);
        for whole in [false, true] {
            // A fresh store remembers nothing: the first reads must verify.
            let store = BlobStore::new(dir.path()).unwrap();
            let readers = 8;
            let barrier = Arc::new(Barrier::new(readers));
            let threads: Vec<_> = (0..readers)
                .map(|_| {
                    let (store, barrier) = (store.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        if whole {
                            assert!(matches!(store.read(&sha, u64::MAX).unwrap(), Some(BlobContent::Whole { .. })));
                        } else {
                            assert_eq!(store.open(&sha).unwrap().unwrap().len, content_len());
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(store.verifications(), 1, "{readers} readers together (whole read: {whole}) hashed the blob once");
            store.open(&sha).unwrap().unwrap();
            assert_eq!(store.verifications(), 1, "a later reader trusts the verified, unchanged file");
        }
    }

    fn content_len() -> u64 {
        32 << 20
    }

    #[test]
    fn a_good_copy_renamed_in_while_a_bad_one_is_hashed_is_not_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path()).unwrap();
        let good = b"the good content".to_vec();
        let sha = put(&store, &good);
        corrupt(&store, &sha, b"rotten content!!");
        let fresh = BlobStore::new(dir.path()).unwrap();
        // While the reader has hashed the rotten file, a repair writes a
        // good copy into place (as a pull or a fill would).
        let writer = fresh.clone();
        let good_copy = good.clone();
        AFTER_HASH.with(|hook| {
            let mut done = false;
            *hook.borrow_mut() = Some(Box::new(move || {
                if std::mem::replace(&mut done, true) {
                    return;
                }
                let mut temp = writer.temp().unwrap();
                temp.file().write_all(&good_copy).unwrap();
                let path = temp.path().to_path_buf();
                // commit_file takes the blob's lock, held by this reader:
                // rename it in directly, as a concurrent writer's rename
                // would land just before the reader's check.
                fs::rename(&path, writer.path_of(&sha)).unwrap();
            }))
        });
        let result = fresh.open(&sha);
        AFTER_HASH.with(|hook| hook.borrow_mut().take());
        let mut served = Vec::new();
        result.unwrap().unwrap().file.read_to_end(&mut served).unwrap();
        assert_eq!(served, good, "the reader is given the good copy, never the rotten bytes it hashed");
        assert_eq!(fs::read(fresh.path_of(&sha)).unwrap(), good, "the good copy stays in place");
        assert_eq!(read_dir(&dir.path().join("quarantine")).unwrap().len(), 0, "nothing was quarantined");
        assert!(fresh.open(&sha).unwrap().is_some(), "the good copy verifies and is served");
    }

    #[test]
    fn the_quarantine_keeps_only_the_newest_files_within_its_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path()).unwrap();
        store.set_quarantine_limits(3, 1 << 20);
        let mut shas = Vec::new();
        for i in 0..6u8 {
            let sha = put(&store, &[i; 100]);
            corrupt(&store, &sha, &[i.wrapping_add(1); 100]);
            assert!(matches!(store.open(&sha), Err(Error::Corrupt { .. })));
            shas.push(sha);
        }
        let mut kept: Vec<String> = read_dir(&dir.path().join("quarantine"))
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().split('.').next().unwrap().to_string())
            .collect();
        kept.sort();
        let mut newest: Vec<String> = shas[3..].iter().map(|s| s.to_hex()).collect();
        newest.sort();
        assert_eq!(kept, newest, "the three newest bad files are kept, the oldest removed");

        store.set_quarantine_limits(100, 250);
        let sha = put(&store, &[9; 100]);
        corrupt(&store, &sha, &[10; 100]);
        assert!(store.open(&sha).is_err());
        assert_eq!(read_dir(&dir.path().join("quarantine")).unwrap().len(), 2, "bounded in bytes too");
    }
}
