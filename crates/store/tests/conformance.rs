//! The storage contract every backend must keep: what is committed is read
//! back bit for bit, nothing half-written is ever visible, corrupt content is
//! never returned, and catalog operations are exact and isolated per module.

use std::io::{Read, Write};

use gomod::{ModulePath, Version};
use store::{BlobContent, CatalogOp, Error, LatestRecord, ListRecord, Sha256, Store, VersionParts, ZipRef};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn module(p: &str) -> ModulePath {
    ModulePath::new(p).unwrap()
}

fn version(v: &str) -> Version {
    Version::new(v).unwrap()
}

fn put_blob(store: &Store, content: &[u8]) -> Sha256 {
    let sha = Sha256::of(content);
    let mut temp = store.blobs.temp().unwrap();
    temp.file().write_all(content).unwrap();
    store.blobs.commit(temp, &sha).unwrap();
    sha
}

fn read_blob(store: &Store, sha: &Sha256) -> Option<Vec<u8>> {
    let mut blob = store.blobs.open(sha).unwrap()?;
    let mut out = Vec::new();
    blob.file.read_to_end(&mut out).unwrap();
    assert_eq!(out.len() as u64, blob.len);
    Some(out)
}

#[test]
fn committed_blob_reads_back_identical() {
    let (_dir, store) = open();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let sha = put_blob(&store, &content);
    assert_eq!(read_blob(&store, &sha).unwrap(), content);
    assert!(store.blobs.exists(&sha));
    assert_eq!(store.blobs.stats().count, 1);
    assert_eq!(store.blobs.stats().bytes, content.len() as u64);
}

#[test]
fn missing_blob_is_none() {
    let (_dir, store) = open();
    assert!(store.blobs.open(&Sha256::of(b"nothing")).unwrap().is_none());
}

#[test]
fn commit_under_wrong_name_is_refused_and_leaves_nothing() {
    let (dir, store) = open();
    let mut temp = store.blobs.temp().unwrap();
    temp.file().write_all(b"real content").unwrap();
    let wrong = Sha256::of(b"other content");
    assert!(matches!(store.blobs.commit(temp, &wrong), Err(Error::HashMismatch { .. })));
    assert!(!store.blobs.exists(&wrong));
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_blob_hashed_while_it_was_written_commits_under_that_hash() {
    use tokio::io::AsyncWriteExt;
    let (_dir, store) = open();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let mut temp = store.blobs.temp().unwrap();
    let file = tokio::fs::File::from_std(temp.take_file().unwrap());
    let mut writer = store::Sha256Writer::new(file);
    writer.write_all(&content).await.unwrap();
    writer.flush().await.unwrap();
    let (file, sha, size) = writer.finish();
    temp.put_back(file.into_std().await);
    assert_eq!((sha, size), (Sha256::of(&content), content.len() as u64));
    assert_eq!(store.blobs.commit_hashed(temp, sha).unwrap(), content.len() as u64);
    assert_eq!(read_blob(&store, &sha).unwrap(), content);
    assert_eq!(store.blobs.stats().count, 1);
}

#[test]
fn dropped_temp_blob_is_removed() {
    let (dir, store) = open();
    let mut temp = store.blobs.temp().unwrap();
    temp.file().write_all(b"half").unwrap();
    drop(temp);
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn leftover_temp_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut temp = store.blobs.temp().unwrap();
        temp.file().write_all(b"partial download").unwrap();
        // A crash: the temp blob's Drop, which removes the file, never runs.
        #[allow(clippy::mem_forget)]
        std::mem::forget(temp);
    }
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 1);
    let _store = Store::open(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn corrupted_blob_is_quarantined_not_served() {
    let (dir, store) = open();
    let sha = put_blob(&store, b"module zip bytes");
    assert!(read_blob(&store, &sha).is_some());
    let path = store.blobs.path_of(&sha);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(store.blobs.open(&sha), Err(Error::Corrupt { .. })));
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path().join("quarantine")).unwrap().count(), 1);
    assert!(store.blobs.open(&sha).unwrap().is_none());
    assert_eq!(store.blobs.stats().count, 0);
}

#[test]
fn small_blobs_are_read_whole_and_large_ones_opened() {
    let (_dir, store) = open();
    let sha = put_blob(&store, b"small zip");
    match store.blobs.read(&sha, 1024).unwrap() {
        Some(BlobContent::Whole { bytes, stamp, .. }) => {
            assert_eq!(bytes, b"small zip");
            assert_eq!(store.blobs.stamp(&sha), Some(stamp), "the stamp names the file as it is");
        }
        _ => panic!("a 9-byte blob under a 1024-byte limit is read whole"),
    }
    assert!(matches!(store.blobs.read(&sha, 4).unwrap(), Some(BlobContent::Open(blob)) if blob.len == 9));
    assert!(store.blobs.read(&Sha256::of(b"absent"), 1024).unwrap().is_none());
}

#[test]
fn a_whole_read_after_restart_verifies_the_bytes_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let sha = put_blob(&Store::open(dir.path()).unwrap(), b"bytes that rot while the node is down");
    let path = Store::open(dir.path()).unwrap().blobs.path_of(&sha);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(store.blobs.read(&sha, 1 << 20), Err(Error::Corrupt { .. })));
    assert!(!path.exists(), "the corrupt file is moved to quarantine");
    assert_eq!(store.blobs.stamp(&sha), None);
}

#[test]
fn corruption_is_found_after_restart_too() {
    let dir = tempfile::tempdir().unwrap();
    let sha = {
        let store = Store::open(dir.path()).unwrap();
        put_blob(&store, b"content that will rot")
    };
    let path = Store::open(dir.path()).unwrap().blobs.path_of(&sha);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(store.blobs.open(&sha), Err(Error::Corrupt { .. })));
}

#[test]
fn scrub_verify_detects_silent_corruption() {
    let (_dir, store) = open();
    let sha = put_blob(&store, b"abcdef");
    assert!(store.blobs.verify(&sha).unwrap());
    std::fs::write(store.blobs.path_of(&sha), b"abcdeX").unwrap();
    assert!(matches!(store.blobs.verify(&sha), Err(Error::Corrupt { .. })));
}

#[test]
fn delete_removes_blob_and_updates_stats() {
    let (_dir, store) = open();
    let sha = put_blob(&store, b"to delete");
    assert!(store.blobs.delete(&sha).unwrap());
    assert!(!store.blobs.delete(&sha).unwrap());
    assert_eq!(store.blobs.stats().count, 0);
}

#[test]
fn version_parts_merge_and_read_back() {
    let (_dir, store) = open();
    let (m, v) = (module("example.com/Upper/mod"), version("v1.1.0-RC1"));
    let info = br#"{"Version":"v1.1.0-RC1"}"#.to_vec();
    store
        .catalog
        .apply(&CatalogOp::PutVersion {
            module: m.clone(),
            version: v.clone(),
            parts: VersionParts { info: Some(info.clone()), ..Default::default() },
        })
        .unwrap();
    assert_eq!(store.catalog.info(&m, &v).unwrap(), Some(info.clone()));
    assert_eq!(store.catalog.go_mod(&m, &v).unwrap(), None);
    let zip = ZipRef { sha256: Sha256::of(b"z"), size: 1, h1: "h1:x".into(), fetched_at_ms: 0 };
    let parts = VersionParts { go_mod: Some(b"module example.com/Upper/mod\n".to_vec()), zip: Some(zip.clone()), info: None };
    store.catalog.apply(&CatalogOp::PutVersion { module: m.clone(), version: v.clone(), parts }).unwrap();
    assert_eq!(store.catalog.info(&m, &v).unwrap(), Some(info));
    assert_eq!(store.catalog.zip(&m, &v).unwrap(), Some(zip));
    assert_eq!(store.catalog.all_zips().unwrap().len(), 1);
}

#[test]
fn versions_are_per_module_and_semver_ordered() {
    let (_dir, store) = open();
    let a = module("example.com/a");
    let ab = module("example.com/a/b");
    let sirupsen_upper = module("github.com/Sirupsen/logrus");
    let sirupsen_lower = module("github.com/sirupsen/logrus");
    for (m, v) in
        [(&a, "v1.10.0"), (&a, "v1.2.0"), (&a, "v1.2.0-rc.1"), (&ab, "v0.1.0"), (&sirupsen_upper, "v1.0.0"), (&sirupsen_lower, "v1.0.1")]
    {
        let parts = VersionParts { go_mod: Some(b"module x\n".to_vec()), ..Default::default() };
        store.catalog.apply(&CatalogOp::PutVersion { module: m.clone(), version: version(v), parts }).unwrap();
    }
    let got: Vec<String> = store.catalog.versions(&a).unwrap().iter().map(|v| v.to_string()).collect();
    assert_eq!(got, ["v1.2.0-rc.1", "v1.2.0", "v1.10.0"]);
    assert_eq!(store.catalog.versions(&ab).unwrap().len(), 1);
    assert_eq!(store.catalog.versions(&sirupsen_upper).unwrap(), vec![version("v1.0.0")]);
    assert_eq!(store.catalog.versions(&sirupsen_lower).unwrap(), vec![version("v1.0.1")]);
}

#[test]
fn lists_latest_and_purge() {
    let (_dir, store) = open();
    let m = module("example.com/m");
    let list = ListRecord { versions: vec!["v1.0.0".into()], fetched_at_ms: 42 };
    store.catalog.apply(&CatalogOp::PutList { module: m.clone(), list: list.clone() }).unwrap();
    assert_eq!(store.catalog.list(&m).unwrap(), Some(list));
    let latest = LatestRecord { info: r#"{"Version":"v1.0.0"}"#.into(), fetched_at_ms: 7 };
    store.catalog.apply(&CatalogOp::PutLatest { module: m.clone(), latest: latest.clone() }).unwrap();
    assert_eq!(store.catalog.latest(&m).unwrap(), Some(latest));
    let v = version("v1.0.0");
    store
        .catalog
        .apply(&CatalogOp::PutVersion {
            module: m.clone(),
            version: v.clone(),
            parts: VersionParts { info: Some(b"{}".to_vec()), ..Default::default() },
        })
        .unwrap();
    store.catalog.apply(&CatalogOp::Purge { module: m.clone(), version: v.clone() }).unwrap();
    assert!(store.catalog.info(&m, &v).unwrap().is_none());
    assert!(store.catalog.versions(&m).unwrap().is_empty());
}

#[test]
fn catalog_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (m, v) = (module("example.com/m"), version("v1.0.0"));
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .catalog
            .apply(&CatalogOp::PutVersion {
                module: m.clone(),
                version: v.clone(),
                parts: VersionParts { go_mod: Some(b"module example.com/m\n".to_vec()), ..Default::default() },
            })
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.catalog.go_mod(&m, &v).unwrap().as_deref(), Some(&b"module example.com/m\n"[..]));
}
