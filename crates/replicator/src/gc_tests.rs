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
