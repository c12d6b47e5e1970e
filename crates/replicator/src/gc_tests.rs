//! Garbage collection of unreferenced blobs: purged versions' blobs go after
//! the grace period, referenced blobs never.

use std::io::Write;
use std::time::Duration;

use gomod::{ModulePath, Version};
use store::{CatalogOp, Sha256, Store, VersionParts, ZipRef};

use crate::anti_entropy::{collect_garbage, referenced};

fn put_blob(store: &Store, content: &[u8]) -> Sha256 {
    let sha = Sha256::of(content);
    let mut temp = store.blobs.temp().unwrap();
    temp.file().write_all(content).unwrap();
    store.blobs.commit(temp, &sha).unwrap();
    sha
}

fn reference(store: &Store, version: &str, sha: &Sha256, size: u64) {
    let zip = ZipRef { sha256: *sha, size, h1: "h1:x".into(), fetched_at_ms: 0 };
    let op = CatalogOp::PutVersion {
        module: ModulePath::new("example.com/gc").unwrap(),
        version: Version::new(version).unwrap(),
        parts: VersionParts { zip: Some(zip), ..Default::default() },
    };
    store.catalog.apply(&op).unwrap();
}

fn pass(store: &Store, grace: Duration, now: u64) -> usize {
    let wanted = referenced(&store.catalog).unwrap();
    collect_garbage(&store.catalog, &store.blobs, &wanted, &|_| false, grace, now).unwrap()
}

#[test]
fn purged_blobs_go_after_the_grace_period_referenced_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = put_blob(&store, b"kept zip");
    let purged = put_blob(&store, b"purged zip");
    let stray = put_blob(&store, b"never referenced");
    reference(&store, "v1.0.0", &kept, 8);
    reference(&store, "v1.1.0", &purged, 10);
    let grace = Duration::from_secs(60);

    assert_eq!(pass(&store, grace, 1_000), 0, "first sighting only marks the stray blob");
    store
        .catalog
        .apply(&CatalogOp::Purge { module: ModulePath::new("example.com/gc").unwrap(), version: Version::new("v1.1.0").unwrap() })
        .unwrap();
    assert_eq!(pass(&store, grace, 30_000), 0, "within the grace period nothing goes");
    assert!(store.blobs.exists(&purged) && store.blobs.exists(&stray));

    assert_eq!(pass(&store, grace, 61_000), 1, "the stray blob's grace is over, the purged one's is not");
    assert!(!store.blobs.exists(&stray));
    assert!(store.blobs.exists(&purged));

    assert_eq!(pass(&store, grace, 200_000), 1);
    assert!(!store.blobs.exists(&purged));
    assert_eq!(pass(&store, grace, 10_000_000_000), 0);
    assert!(store.blobs.exists(&kept), "a referenced blob is never deleted");
}

#[test]
fn a_blob_referenced_again_loses_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let sha = put_blob(&store, b"comes back");
    let grace = Duration::from_secs(60);
    assert_eq!(pass(&store, grace, 0), 0);
    reference(&store, "v2.0.0", &sha, 10);
    assert_eq!(pass(&store, grace, 1_000), 0);
    let module = ModulePath::new("example.com/gc").unwrap();
    store.catalog.apply(&CatalogOp::Purge { module, version: Version::new("v2.0.0").unwrap() }).unwrap();
    // Unreferenced again: the grace period starts over from this sighting.
    assert_eq!(pass(&store, grace, 100_000), 0);
    assert!(store.blobs.exists(&sha));
    assert_eq!(pass(&store, grace, 160_000), 1);
}

thread_local! {
    static BEFORE_DELETE: std::cell::RefCell<Option<Box<dyn FnMut()>>> = std::cell::RefCell::new(None);
}

/// Test hook: runs in the collecting thread between its last look at the
/// catalog and its deletes.
pub(crate) fn before_delete() {
    BEFORE_DELETE.with(|hook| {
        if let Some(hook) = hook.borrow_mut().as_mut() {
            hook();
        }
    });
}

/// What a fill does (gateway fill.rs): pin the blob, write it, commit its
/// catalog entry, unpin.
fn fill(store: &Store, version: &str, content: &[u8]) {
    let sha = Sha256::of(content);
    let _pin = store.blobs.pin(&sha);
    let mut temp = store.blobs.temp().unwrap();
    temp.file().write_all(content).unwrap();
    store.blobs.commit(temp, &sha).unwrap();
    reference(store, version, &sha, content.len() as u64);
}

#[test]
fn a_purged_version_fetched_again_during_a_collection_keeps_its_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let content = b"purged, then fetched again".to_vec();
    let sha = put_blob(&store, &content);
    reference(&store, "v3.0.0", &sha, content.len() as u64);
    let module = ModulePath::new("example.com/gc").unwrap();
    store.catalog.apply(&CatalogOp::Purge { module, version: Version::new("v3.0.0").unwrap() }).unwrap();
    let grace = Duration::from_secs(60);
    assert_eq!(pass(&store, grace, 1_000), 0, "first sighting only marks the purged blob");

    // The next pass (grace over) has read the catalog and is about to
    // delete when a client fetches v3.0.0 again: the fill runs now.
    let (at_hook_tx, at_hook_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let collector = {
        let store = store.clone();
        std::thread::spawn(move || {
            BEFORE_DELETE.with(|hook| {
                *hook.borrow_mut() = Some(Box::new(move || {
                    at_hook_tx.send(()).unwrap();
                    // Wait for the fill to finish, or long enough for it to
                    // have got as far as it can meanwhile.
                    let _ = go_rx.recv_timeout(Duration::from_millis(500));
                }))
            });
            pass(&store, grace, 100_000)
        })
    };
    at_hook_rx.recv_timeout(Duration::from_secs(10)).expect("the collection reaches its deletes");
    let filler = {
        let (store, content) = (store.clone(), content.clone());
        std::thread::spawn(move || {
            fill(&store, "v3.0.0", &content);
            let _ = go_tx.send(());
        })
    };
    collector.join().unwrap();
    filler.join().unwrap();

    assert!(referenced(&store.catalog).unwrap().contains_key(&sha), "v3.0.0 is in the catalog again");
    assert!(store.blobs.exists(&sha), "the blob of a referenced version is never deleted");
    assert!(store.blobs.open(&sha).unwrap().is_some());
    assert_eq!(pass(&store, grace, 1_000_000), 0, "and later passes keep it");
    assert!(store.blobs.exists(&sha));
}
