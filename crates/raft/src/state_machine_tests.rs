//! Tests of the state machine: snapshots as files, interrupted installs,
//! and first-writer-wins application of catalog entries.

use super::*;
use openraft::storage::RaftSnapshotBuilder;
use tokio::io::AsyncWriteExt;

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
