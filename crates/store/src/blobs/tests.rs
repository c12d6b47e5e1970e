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
