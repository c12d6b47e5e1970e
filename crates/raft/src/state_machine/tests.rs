//! Tests of the state machine: snapshots as files, interrupted installs,
//! and first-writer-wins application of catalog entries.

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use store::{Catalog, CatalogOp, CF_RAFT_META};
use tokio::io::AsyncWriteExt;

use super::*;
use crate::codec::to_json;
use crate::types::{Command, Entry, LogId, StoredMembership};

fn catalog(db: &Db) -> Vec<(Vec<u8>, Vec<u8>)> {
    db.scan_range(CF_CATALOG, &[], None).unwrap()
}

/// A state machine on a fresh database holding `n` catalog entries.
fn filled(dir: &Path, n: usize) -> (Db, StateMachine) {
    let db = Db::open(&dir.join("db")).unwrap();
    let mut ops: Vec<DbOp> = (0..n).map(|i| put(format!("v\0example.com/m{i:05}").into_bytes(), vec![b'x'; 100])).collect();
    let last = LogId::new(openraft::CommittedLeaderId::new(3, 1), 42);
    ops.push(put(KEY_LAST_APPLIED.to_vec(), to_json(&Some(last)).unwrap()));
    ops.push(put(KEY_MEMBERSHIP.to_vec(), to_json(&StoredMembership::default()).unwrap()));
    db.write(ops, true).unwrap();
    let sm = StateMachine::open(db.clone()).unwrap();
    (db, sm)
}

#[tokio::test]
async fn a_snapshot_streams_to_a_file_and_installs_in_batches() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_db, mut a) = filled(a_dir.path(), 500);
    let built = a.build_snapshot().await.unwrap();
    let file = a_dir.path().join("snapshots").join(format!("{}.snap", built.meta.snapshot_id));
    assert!(file.is_file(), "no snapshot file {}", file.display());
    assert_eq!(built.meta.last_log_id.map(|id| id.index), Some(42));

    let (b_db, mut b) = filled(b_dir.path(), 3);
    b.db.write(vec![put(b"v\0only-on-b".to_vec(), b"stale".to_vec())], true).unwrap();
    b.install_batch = 4096; // about 40 pairs a batch
    let mut receiving = b.begin_receiving_snapshot().await.unwrap();
    receiving.write_all(&std::fs::read(&file).unwrap()).await.unwrap();
    b.install_snapshot(&built.meta, receiving).await.unwrap();
    assert!(catalog(&b_db) == catalog(&a_db), "the installed catalog differs from the snapshot's");
    assert!(b_db.get(CF_RAFT_META, KEY_SNAPSHOT_INSTALLING).unwrap().is_none());
    let current = b.get_current_snapshot().await.unwrap().expect("a current snapshot");
    assert_eq!(current.meta, built.meta);
    let names: Vec<String> =
        std::fs::read_dir(b_dir.path().join("snapshots")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, [format!("{}.snap", built.meta.snapshot_id)], "left-over files");
}

#[tokio::test]
async fn an_install_cut_short_by_a_crash_is_finished_at_start_up() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_db, mut a) = filled(a_dir.path(), 200);
    let built = a.build_snapshot().await.unwrap();
    let file = a_dir.path().join("snapshots").join(format!("{}.snap", built.meta.snapshot_id));

    // What a crash after the first of several batches leaves: the file
    // in place, the install recorded, the catalog half replaced.
    let (b_db, b) = filled(b_dir.path(), 1);
    std::fs::copy(&file, b.snapshots.path_of(&built.meta.snapshot_id)).unwrap();
    let mark = DbOp::Put { cf: CF_RAFT_META, key: KEY_SNAPSHOT_INSTALLING.to_vec(), value: to_json(&built.meta).unwrap() };
    let half = catalog(&a_db).into_iter().take(50).map(|(k, v)| put(k, v));
    b_db.write(std::iter::once(mark).chain(half).collect(), true).unwrap();
    drop(b);

    let mut b = StateMachine::open(b_db.clone()).unwrap();
    assert!(catalog(&b_db) == catalog(&a_db), "the interrupted install was not finished");
    assert_eq!(b.applied_state().await.unwrap().0, built.meta.last_log_id);
    assert!(b_db.get(CF_RAFT_META, KEY_SNAPSHOT_INSTALLING).unwrap().is_none());
}

fn put_version(index: u64, info: &str, sha: char) -> Entry {
    let zip = store::ZipRef { sha256: sha.to_string().repeat(64).parse().unwrap(), size: 10, h1: format!("h1:{sha}"), fetched_at_ms: 0 };
    let parts = store::VersionParts { info: Some(info.as_bytes().to_vec()), go_mod: None, zip: Some(zip) };
    let op = CatalogOp::PutVersion {
        module: gomod::ModulePath::new("example.com/m").unwrap(),
        version: gomod::Version::new("v1.0.0").unwrap(),
        parts,
    };
    Entry { log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(Command::Catalog(op)) }
}

#[tokio::test]
async fn a_later_entry_never_changes_a_recorded_version() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut sm) = filled(dir.path(), 0);
    let mut events = sm.subscribe();
    let catalog = Catalog::new(db.clone());
    let (m, v) = (gomod::ModulePath::new("example.com/m").unwrap(), gomod::Version::new("v1.0.0").unwrap());

    // In one batch, and in a later one: the first entry's bytes stay.
    let replies = sm.apply([put_version(43, "first", 'a'), put_version(44, "second", 'b')]).await.unwrap();
    assert_eq!(replies[0].kept, Vec::<String>::new());
    assert_eq!(replies[1].kept, ["info", "zip"]);
    let replies = sm.apply([put_version(45, "third", 'c')]).await.unwrap();
    assert_eq!(replies[0].kept, ["info", "zip"]);
    assert_eq!(catalog.info(&m, &v).unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(catalog.zip(&m, &v).unwrap().map(|z| z.h1), Some("h1:a".to_string()));
    assert_eq!(sm.last_applied_index().unwrap(), Some(45));

    // Only the recorded zip is announced to the replicator.
    let mut announced = Vec::new();
    while let Ok(event) = events.try_recv() {
        announced.push(event);
    }
    assert_eq!(announced, [StateEvent::Zip { sha256: "a".repeat(64).parse().unwrap(), size: 10 }]);

    // Applying the first entry again (a replay) changes nothing either.
    let replies = sm.apply([put_version(46, "first", 'a')]).await.unwrap();
    assert_eq!(replies[0].kept, Vec::<String>::new());
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_build_leaves_a_transfer_in_progress_alone() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_db, mut a) = filled(a_dir.path(), 100);
    let built = a.build_snapshot().await.unwrap();
    let bytes = std::fs::read(a.snapshots.path_of(&built.meta.snapshot_id)).unwrap();

    let (b_db, mut b) = filled(b_dir.path(), 3);
    let mut receiving = b.begin_receiving_snapshot().await.unwrap();
    receiving.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    receiving.flush().await.unwrap();
    let snapshots = b_dir.path().join("snapshots");
    let incoming: Vec<String> = file_names(&snapshots).into_iter().filter(|n| n.starts_with("incoming-")).collect();
    assert_eq!(incoming.len(), 1);
    // openraft builds on a clone of the state machine, in its own task,
    // while chunks of a snapshot from the leader arrive.
    let own = b.clone().build_snapshot().await.unwrap();
    assert!(snapshots.join(&incoming[0]).is_file(), "the build removed the transfer in progress: {:?}", file_names(&snapshots));

    receiving.write_all(&bytes[bytes.len() / 2..]).await.unwrap();
    b.install_snapshot(&built.meta, receiving).await.unwrap();
    assert!(catalog(&b_db) == catalog(&a_db));
    assert_eq!(b.get_current_snapshot().await.unwrap().unwrap().meta, built.meta);
    assert_ne!(own.meta, built.meta);
    assert_eq!(file_names(&snapshots), [format!("{}.snap", built.meta.snapshot_id)]);
}

#[tokio::test]
async fn a_crash_in_an_install_with_a_build_after_it_still_starts() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_db, mut a) = filled(a_dir.path(), 200);
    let built = a.build_snapshot().await.unwrap();
    let bytes = std::fs::read(a.snapshots.path_of(&built.meta.snapshot_id)).unwrap();

    let (b_db, mut b) = filled(b_dir.path(), 1);
    b.install_batch = 4096;
    b.crash_after_batches = Some(1);
    let mut receiving = b.begin_receiving_snapshot().await.unwrap();
    receiving.write_all(&bytes).await.unwrap();
    assert!(b.install_snapshot(&built.meta, receiving).await.is_err(), "the test crash");
    assert!(b_db.get(CF_RAFT_META, KEY_SNAPSHOT_INSTALLING).unwrap().is_some());
    // A build between the crash of the install and the process's end
    // neither snapshots the half-replaced catalog nor removes the file the
    // install needs to finish.
    let refused = b.clone().build_snapshot().await.expect_err("no snapshot of a half-installed catalog").to_string();
    assert!(refused.contains("has not finished"), "{refused}");
    assert!(b.snapshots.path_of(&built.meta.snapshot_id).is_file());
    drop(b);

    let mut b = StateMachine::open(b_db.clone()).unwrap();
    assert!(catalog(&b_db) == catalog(&a_db), "the interrupted install was not finished");
    assert_eq!(b.applied_state().await.unwrap().0, built.meta.last_log_id);
    assert_eq!(b.get_current_snapshot().await.unwrap().unwrap().meta, built.meta);
}

#[tokio::test]
async fn start_up_removes_partial_and_unrecorded_snapshot_files() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut sm) = filled(dir.path(), 10);
    let built = sm.build_snapshot().await.unwrap();
    drop(sm);
    // What crashes leave: a transfer, a build, a snapshot published but
    // never recorded.
    let snapshots = dir.path().join("snapshots");
    for name in ["incoming-1-0.part", "build-1-0.tmp", "1-1-7-99.snap"] {
        std::fs::write(snapshots.join(name), b"partial").unwrap();
    }
    let mut sm = StateMachine::open(db).unwrap();
    assert_eq!(file_names(&snapshots), [format!("{}.snap", built.meta.snapshot_id)]);
    assert_eq!(sm.get_current_snapshot().await.unwrap().unwrap().meta, built.meta);
}

#[tokio::test]
async fn a_build_waits_until_an_install_in_progress_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, sm) = filled(dir.path(), 10);
    // What `install_snapshot` holds from publishing its file to recording
    // it, held by another thread.
    let (locked, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let installer = sm.clone();
    let installing = std::thread::spawn(move || {
        let _guard = installer.lock_snapshots();
        locked.0.send(()).unwrap();
        let _ = release.1.recv();
    });
    locked.1.recv().unwrap();
    let mut builder = sm.clone();
    let build = tokio::spawn(async move { builder.build_snapshot().await.map(|s| s.meta) });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!build.is_finished(), "a build ran during an install");
    release.0.send(()).unwrap();
    installing.join().unwrap();
    let meta = tokio::time::timeout(std::time::Duration::from_secs(5), build).await.expect("the build goes on").unwrap().unwrap();
    assert_eq!(meta.last_log_id.map(|id| id.index), Some(42));
}

#[tokio::test]
async fn placement_changes_and_purges_are_announced_for_the_lag() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, mut sm) = filled(dir.path(), 0);
    let mut events = sm.subscribe();
    let sha: Sha256 = "a".repeat(64).parse().unwrap();
    let entry = |index: u64, cmd: Command| Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd),
    };
    let purge =
        CatalogOp::Purge { module: gomod::ModulePath::new("example.com/m").unwrap(), version: gomod::Version::new("v1.0.0").unwrap() };
    sm.apply([
        put_version(50, "info", 'a'),
        entry(51, Command::BlobStored { node_id: 2, blobs: vec![sha] }),
        entry(52, Command::BlobLost { node_id: 2, blobs: vec![sha] }),
        entry(53, Command::Catalog(purge)),
    ])
    .await
    .unwrap();
    let mut announced = Vec::new();
    while let Ok(event) = events.try_recv() {
        announced.push(event);
    }
    assert_eq!(
        announced,
        [
            StateEvent::Zip { sha256: sha, size: 10 },
            StateEvent::Stored { sha256: sha, node_id: 2 },
            StateEvent::Lost { sha256: sha, node_id: 2 },
            StateEvent::Purged { sha256: sha },
        ]
    );
    let mut placed = Vec::new();
    sm.for_each_placement(|sha, node| placed.push((sha, node))).unwrap();
    assert!(placed.is_empty(), "placement after the purge: {placed:?}");
}
