//! The state machine: applying committed [`Command`]s to the catalog column
//! family, and snapshots of that column family.
//!
//! Raft's own bookkeeping lives in the same column family under keys that
//! start with `0xFF` (catalog keys start with `v`, `l` or `t`), written in the
//! same atomic batch as the entries' catalog changes, so the catalog and
//! "how far it has applied" can never disagree, and a snapshot of the column
//! family carries both:
//!
//! ```text
//! 0xFF "last_applied"          → JSON LogId
//! 0xFF "membership"            → JSON StoredMembership
//! 0xFF "node/" <u64be node id> → announced gateway URL (UTF-8)
//! 0xFF "blob/" <sha256 hex> "/" <u64be node id> → empty: placement
//! 0xFF "audit/" <u64be log index> → JSON AuditRecord (the audit log)
//! ```
//!
//! Each applied entry that references a zip, changes placement or purges a
//! zip, and each installed snapshot, is also announced on a broadcast
//! channel ([`StateEvent`]) for the replicator (its queue and lag book).
//!
//! Snapshots are files (see [`SnapshotDir`]): built by streaming the column
//! family, installed by streaming pairs back, so neither has to fit in
//! memory. `raft_meta` records the current snapshot's meta, and while one is
//! being installed in several batches (catalogs over [`INSTALL_BATCH`]), the
//! meta of that install: a node that crashed in the middle finishes it from
//! the file when it starts again, before raft runs. Builds and installs
//! never overlap (`snapshot_lock`), so a build never snapshots a
//! half-replaced catalog nor removes the file an install reads; start-up
//! removes what a crash left half written or unrecorded.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use store::{AuditRecord, Catalog, Db, DbOp, Pending, Sha256, CF_CATALOG, CF_RAFT_META, PART_ZIP};

use crate::codec::{from_json, read_err, to_json};
use crate::snapshot::{self, PairReader};
use crate::snapshot_dir::SnapshotDir;
use store::CatalogOp;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

use crate::types::{Applied, Command, Entry, LogId, Snapshot, SnapshotMeta, StateEvent, StorageError, StoredMembership, TypeConfig};

const KEY_LAST_APPLIED: &[u8] = b"\xFFlast_applied";
const KEY_MEMBERSHIP: &[u8] = b"\xFFmembership";
const NODE_PREFIX: &[u8] = b"\xFFnode/";
const BLOB_PREFIX: &[u8] = b"\xFFblob/";
/// Events buffered for a slow replicator before it is told to rescan.
const EVENT_BUFFER: usize = 16_384;
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// Where earlier versions kept the snapshot's bytes (moved to a file on start).
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";
/// Meta of a snapshot whose install has begun but not finished.
const KEY_SNAPSHOT_INSTALLING: &[u8] = b"snapshot_installing";
/// Bytes of catalog pairs written per batch when installing a snapshot; a
/// smaller snapshot is installed in one atomic batch.
pub(crate) const INSTALL_BATCH: usize = 64 << 20;

/// The catalog state machine ([`RaftStateMachine`] and its snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    db: Db,
    events: broadcast::Sender<StateEvent>,
    /// Keeps builds and installs of snapshots apart (openraft builds on a
    /// clone, in its own task, while the state machine may install): an
    /// install holds it from publishing its file until it is recorded and
    /// the older files are removed; a build while it reads the catalog (a
    /// half-replaced catalog is never a snapshot) and while it records its
    /// file and removes others (never the file an install is reading).
    snapshot_lock: Arc<Mutex<()>>,
    snapshots: Arc<SnapshotDir>,
    /// [`INSTALL_BATCH`]; smaller in tests.
    install_batch: usize,
    /// Tests: the install fails (as a crash would stop it) after this many
    /// batches.
    #[cfg(test)]
    crash_after_batches: Option<u32>,
}

impl StateMachine {
    /// Opens the state machine on `db`, with its snapshot files in
    /// `snapshots/` next to the database directory. Finishes a snapshot
    /// install that a crash interrupted.
    pub fn open(db: Db) -> Result<Self, StorageError> {
        let dir = db.path().parent().unwrap_or(Path::new(".")).join("snapshots");
        let snapshots = SnapshotDir::open(dir).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let sm = StateMachine {
            db,
            events: broadcast::channel(EVENT_BUFFER).0,
            snapshot_lock: Arc::new(Mutex::new(())),
            snapshots: Arc::new(snapshots),
            install_batch: INSTALL_BATCH,
            #[cfg(test)]
            crash_after_batches: None,
        };
        sm.migrate_snapshot_data()?;
        if let Some(meta) = sm.installing_meta()? {
            let path = sm.snapshots.path_of(&meta.snapshot_id);
            if !path.is_file() {
                return Err(StorageIOError::read_snapshot(
                    Some(meta.signature()),
                    AnyError::error(format!(
                        "a snapshot install was interrupted and its file {} is gone, so the catalog is half replaced; \
                         move this node's data_dir away and start it empty: it copies everything back from its peers",
                        path.display()
                    )),
                )
                .into());
            }
            tracing::warn!(snapshot = %meta.snapshot_id, "finishing a snapshot install that was interrupted");
            sm.apply_snapshot_file(&meta, &path)?;
        }
        // What a crash left: snapshots complete but never recorded (or no
        // longer current). Partial files went when the directory opened.
        if let Some(meta) = sm.current_snapshot_meta()? {
            sm.remove_other_snapshots(&meta, &sm.snapshots.path_of(&meta.snapshot_id));
        } else if let Err(e) = sm.snapshots.remove_all_but(&[]) {
            tracing::warn!(error = %e, "could not remove unrecorded snapshot files");
        }
        Ok(sm)
    }

    /// The meta of a snapshot whose install began but did not finish.
    fn installing_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        let pending = self.db.get(CF_RAFT_META, KEY_SNAPSHOT_INSTALLING).map_err(read_err)?;
        pending.map(|p| from_json("interrupted snapshot install", &p)).transpose()
    }

    fn lock_snapshots(&self) -> std::sync::MutexGuard<'_, ()> {
        self.snapshot_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Events of entries applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.events.subscribe()
    }

    /// The nodes recorded as holding blob `sha256`, ascending.
    pub fn placement(&self, sha256: &Sha256) -> Result<Vec<u64>, store::Error> {
        let prefix = blob_prefix(sha256);
        let pairs = self.db.scan_prefix(CF_CATALOG, &prefix)?;
        Ok(pairs.iter().filter_map(|(k, _)| Some(u64::from_be_bytes(k[prefix.len()..].try_into().ok()?))).collect())
    }

    /// Every placement record: (blob sha256, node id).
    pub fn placements(&self) -> Result<Vec<(Sha256, u64)>, store::Error> {
        let mut out = Vec::new();
        self.for_each_placement(|sha, node| out.push((sha, node)))?;
        Ok(out)
    }

    /// Calls `visit` with every placement record (blob sha256, node id) in
    /// ascending order of sha256, then node id, one at a time (placement
    /// keys only; nothing else is read).
    pub fn for_each_placement(&self, mut visit: impl FnMut(Sha256, u64)) -> Result<(), store::Error> {
        self.db.for_each_prefix(CF_CATALOG, BLOB_PREFIX, |key, _| {
            let rest = &key[BLOB_PREFIX.len()..];
            let parsed = (|| {
                let (hex, node) = (rest.get(..64)?, rest.get(65..)?);
                let sha = std::str::from_utf8(hex).ok()?.parse().ok()?;
                Some((sha, u64::from_be_bytes(node.try_into().ok()?)))
            })();
            if let Some((sha, node)) = parsed {
                visit(sha, node);
            }
            Ok(true)
        })
    }

    /// The gateway URL `node_id` announced, if it did.
    pub fn gateway_url(&self, node_id: u64) -> Result<Option<String>, store::Error> {
        let url = self.db.get(CF_CATALOG, &node_key(node_id))?;
        Ok(url.map(|u| String::from_utf8_lossy(&u).into_owned()))
    }

    /// The last `limit` audit records, oldest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, store::Error> {
        store::read_audit(&self.db, limit)
    }

    /// Index of the last entry applied to the catalog.
    pub fn last_applied_index(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.last_applied()?.map(|id| id.index))
    }

    fn last_applied(&self) -> Result<Option<LogId>, StorageError> {
        let value = self.db.get(CF_CATALOG, KEY_LAST_APPLIED).map_err(read_err)?;
        Ok(value.map(|v| from_json::<Option<LogId>>("last applied log id", &v)).transpose()?.flatten())
    }

    fn membership(&self) -> Result<StoredMembership, StorageError> {
        let value = self.db.get(CF_CATALOG, KEY_MEMBERSHIP).map_err(read_err)?;
        Ok(value.map(|v| from_json("last membership", &v)).transpose()?.unwrap_or_default())
    }

    /// Makes the snapshot file `path` (of `meta`) the current snapshot unless
    /// a newer one is recorded; returns whether it did.
    /// The caller holds the snapshot lock.
    fn save_current_snapshot(&self, meta: &SnapshotMeta, path: &Path) -> Result<bool, StorageError> {
        if let Some(stored) = self.current_snapshot_meta()? {
            if stored.last_log_id > meta.last_log_id {
                return Ok(false);
            }
        }
        let ops = vec![DbOp::Put { cf: CF_RAFT_META, key: KEY_SNAPSHOT_META.to_vec(), value: to_json(meta)? }];
        self.db.write(ops, true).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.remove_other_snapshots(meta, path);
        Ok(true)
    }

    /// Removes snapshot files but `keep` and the one of an install that
    /// has not finished (start-up finishes it from that file).
    fn remove_other_snapshots(&self, meta: &SnapshotMeta, keep: &Path) {
        let installing = match self.installing_meta() {
            Ok(installing) => installing.map(|m| self.snapshots.path_of(&m.snapshot_id)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the snapshot install mark; removing no snapshot files");
                return;
            }
        };
        let keep: Vec<&Path> = std::iter::once(keep).chain(installing.as_deref()).collect();
        if let Err(e) = self.snapshots.remove_all_but(&keep) {
            tracing::warn!(snapshot = %meta.snapshot_id, error = %e, "could not remove older snapshot files");
        }
    }

    /// Snapshots of earlier versions lived in `raft_meta`; they move to a file.
    fn migrate_snapshot_data(&self) -> Result<(), StorageError> {
        let Some(data) = self.db.get(CF_RAFT_META, KEY_SNAPSHOT_DATA).map_err(read_err)? else { return Ok(()) };
        if let Some(meta) = self.current_snapshot_meta()? {
            let write = |e: std::io::Error| StorageIOError::write_snapshot(Some(meta.signature()), &e);
            let (mut file, tmp) = self.snapshots.temp().map_err(write)?;
            file.write_all(&data).and_then(|()| file.sync_all()).map_err(write)?;
            self.snapshots.publish(&tmp, &self.snapshots.path_of(&meta.snapshot_id)).map_err(write)?;
        }
        let ops = vec![DbOp::Delete { cf: CF_RAFT_META, key: KEY_SNAPSHOT_DATA.to_vec() }];
        self.db.write(ops, true).map_err(|e| StorageIOError::write_snapshot(None, &e).into())
    }

    /// Replaces the catalog with the pairs of the snapshot file at `path`.
    /// Up to [`INSTALL_BATCH`] bytes this is one atomic batch; beyond, the
    /// install is recorded first and finished at start-up after a crash.
    /// The caller holds the snapshot lock (or is start-up, alone).
    fn apply_snapshot_file(&self, meta: &SnapshotMeta, path: &Path) -> Result<(), StorageError> {
        let sig = Some(meta.signature());
        let read = |e: String| StorageError::from(StorageIOError::read_snapshot(sig.clone(), AnyError::error(e)));
        let write = |e: store::Error| StorageError::from(StorageIOError::write_snapshot(sig.clone(), &e));
        let file = std::fs::File::open(path).map_err(|e| read(format!("opening {}: {e}", path.display())))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or_default();
        tracing::info!(snapshot = %meta.snapshot_id, bytes, "installing catalog snapshot");
        let mut pairs = PairReader::new(BufReader::new(file)).map_err(|e| read(e.to_string()))?;

        let mut ops = Vec::new();
        if let Some((mut end, _)) = self.db.last(CF_CATALOG).map_err(read_err)? {
            end.push(0);
            ops.push(DbOp::DeleteRange { cf: CF_CATALOG, from: Vec::new(), to: end });
        }
        let (mut batch_bytes, mut count, mut batches) = (0usize, 0u64, 0u32);
        while let Some((key, value)) = pairs.next_pair().map_err(|e| read(e.to_string()))? {
            batch_bytes += key.len() + value.len();
            count += 1;
            ops.push(put(key, value));
            if batch_bytes >= self.install_batch {
                if batches == 0 {
                    // Several batches: a crash from here on must not leave a
                    // half-replaced catalog behind.
                    let mark = DbOp::Put { cf: CF_RAFT_META, key: KEY_SNAPSHOT_INSTALLING.to_vec(), value: to_json(meta)? };
                    self.db.write(vec![mark], true).map_err(write)?;
                }
                self.db.write(std::mem::take(&mut ops), false).map_err(write)?;
                batch_bytes = 0;
                batches += 1;
                #[cfg(test)]
                if self.crash_after_batches == Some(batches) {
                    return Err(read(format!("test crash after {batches} batches")));
                }
            }
        }
        ops.push(put(KEY_LAST_APPLIED.to_vec(), to_json(&meta.last_log_id)?));
        ops.push(put(KEY_MEMBERSHIP.to_vec(), to_json(&meta.last_membership)?));
        ops.push(DbOp::Put { cf: CF_RAFT_META, key: KEY_SNAPSHOT_META.to_vec(), value: to_json(meta)? });
        ops.push(DbOp::Delete { cf: CF_RAFT_META, key: KEY_SNAPSHOT_INSTALLING.to_vec() });
        self.db.write(ops, true).map_err(write)?;
        self.remove_other_snapshots(meta, path);
        tracing::info!(snapshot = %meta.snapshot_id, pairs = count, bytes, batches = batches + 1, "installed catalog snapshot");
        let _ = self.events.send(StateEvent::Reset);
        Ok(())
    }

    fn current_snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        let value = self.db.get(CF_RAFT_META, KEY_SNAPSHOT_META).map_err(read_err)?;
        value.map(|v| from_json("snapshot meta", &v)).transpose()
    }
}

impl StateMachine {
    /// Streams the catalog into `file` (at `tmp`) and syncs it: the raw
    /// last-applied id and membership among the pairs, pairs and bytes.
    #[allow(clippy::type_complexity)]
    fn write_catalog(&self, file: std::fs::File, tmp: &Path) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>, u64, u64), StorageError> {
        let write = |e: std::io::Error| {
            let _ = std::fs::remove_file(tmp);
            StorageError::from(StorageIOError::write_snapshot(None, &e))
        };
        let mut out = BufWriter::new(file);
        snapshot::write_header(&mut out).map_err(write)?;
        // One RocksDB iterator sees one point in time, so the pairs and the
        // 0xFF bookkeeping among them agree even while entries are applied.
        let (mut last_applied, mut membership, mut pairs, mut bytes) = (None, None, 0u64, 0u64);
        for item in self.db.iter_all(CF_CATALOG) {
            let (key, value) = item.map_err(read_err)?;
            if &*key == KEY_LAST_APPLIED {
                last_applied = Some(value.to_vec());
            } else if &*key == KEY_MEMBERSHIP {
                membership = Some(value.to_vec());
            }
            snapshot::write_pair(&mut out, &key, &value).map_err(write)?;
            pairs += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        let file = out.into_inner().map_err(|e| write(e.into_error()))?;
        file.sync_all().map_err(write)?;
        Ok((last_applied, membership, pairs, bytes))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // An install in progress can take minutes: wait for it without
        // holding one of the runtime's threads (mostly: one that starts
        // right after this look is waited for in the lock).
        while matches!(self.snapshot_lock.try_lock(), Err(std::sync::TryLockError::WouldBlock)) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (meta, file) = self.build_snapshot_file()?;
        Ok(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) })
    }
}

impl StateMachine {
    /// Builds, publishes and records a snapshot file, all under the
    /// snapshot lock: never while an install replaces the catalog, and an
    /// install never removes it before it is recorded or given up.
    fn build_snapshot_file(&self) -> Result<(SnapshotMeta, std::fs::File), StorageError> {
        let write = |e: std::io::Error| StorageError::from(StorageIOError::write_snapshot(None, &e));
        let _guard = self.lock_snapshots();
        if let Some(installing) = self.installing_meta()? {
            let why = format!("the install of snapshot {} has not finished; restart the node to finish it", installing.snapshot_id);
            return Err(StorageIOError::write_snapshot(None, AnyError::error(why)).into());
        }
        let (file, tmp) = self.snapshots.temp().map_err(write)?;
        let (last_applied, membership, pairs, bytes) = self.write_catalog(file, &tmp)?;
        let last_log_id = last_applied.map(|v| from_json::<Option<LogId>>("last applied log id", &v)).transpose()?.flatten();
        let last_membership: StoredMembership = membership.map(|v| from_json("last membership", &v)).transpose()?.unwrap_or_default();
        let built_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{built_ms}", id.leader_id, id.index),
            None => format!("--{built_ms}"),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let path = self.snapshots.path_of(&meta.snapshot_id);
        self.snapshots.publish(&tmp, &path).map_err(write)?;
        let file = std::fs::File::open(&path).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        if !self.save_current_snapshot(&meta, &path)? {
            // A newer snapshot was installed before; this one is served
            // from the open file but not kept.
            let _ = std::fs::remove_file(&path);
        }
        tracing::info!(snapshot = %meta.snapshot_id, pairs, bytes, "built catalog snapshot");
        Ok((meta, file))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied()?, self.membership()?))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        let mut replies = Vec::new();
        let mut last = None;
        let mut membership = None;
        let mut events = Vec::new();
        let catalog = Catalog::new(self.db.clone());
        // Catalog writes earlier in this batch, which the database does not show yet.
        let mut pending = Pending::default();
        for entry in entries {
            let mut kept = Vec::new();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Command::Catalog(op)) => {
                    if let CatalogOp::Purge { module, version } = &op {
                        // The purged zip's placement goes too: the blob is
                        // about to be deleted everywhere, and min_copies
                        // must not count those copies if it comes back.
                        let zip = catalog.zip_pending(module, version, &pending).map_err(read_err)?;
                        if let Some(sha) = zip.map(|z| z.sha256) {
                            let held = self.db.scan_prefix(CF_CATALOG, &blob_prefix(&sha)).map_err(read_err)?;
                            ops.extend(held.into_iter().map(|(key, _)| DbOp::Delete { cf: CF_CATALOG, key }));
                            events.push(StateEvent::Purged { sha256: sha });
                        }
                    }
                    let plan = catalog.plan(&op, &mut pending).map_err(read_err)?;
                    if let CatalogOp::PutVersion { module, version, parts } = &op {
                        if let Some(zip) = parts.zip.as_ref().filter(|_| plan.written.contains(&PART_ZIP)) {
                            events.push(StateEvent::Zip { sha256: zip.sha256, size: zip.size });
                        }
                        if !plan.kept.is_empty() {
                            tracing::warn!(%module, %version, parts = ?plan.kept, index = entry.log_id.index,
                                "entry offers other content for parts already recorded; the recorded ones stay (first writer wins)");
                        }
                    }
                    kept = plan.kept.iter().map(|p| p.to_string()).collect();
                    ops.extend(plan.ops);
                }
                EntryPayload::Normal(Command::AnnounceNode { node_id, gateway_url }) => {
                    ops.push(put(node_key(node_id), gateway_url.into_bytes()));
                }
                EntryPayload::Normal(Command::BlobStored { node_id, blobs }) => {
                    for sha256 in blobs {
                        ops.push(put(placement_key(&sha256, node_id), Vec::new()));
                        events.push(StateEvent::Stored { sha256, node_id });
                    }
                }
                EntryPayload::Normal(Command::BlobLost { node_id, blobs }) => {
                    for sha256 in blobs {
                        ops.push(DbOp::Delete { cf: CF_CATALOG, key: placement_key(&sha256, node_id) });
                        events.push(StateEvent::Lost { sha256, node_id });
                    }
                }
                EntryPayload::Normal(Command::Audit(record)) => {
                    ops.push(store::audit_op(entry.log_id.index, &record).map_err(read_err)?);
                }
                EntryPayload::Membership(m) => membership = Some(StoredMembership::new(Some(entry.log_id), m)),
            }
            replies.push(Applied { index: entry.log_id.index, kept });
            last = Some(entry.log_id);
        }
        let Some(last) = last else { return Ok(replies) };
        if let Some(membership) = membership {
            ops.push(put(KEY_MEMBERSHIP.to_vec(), to_json(&membership)?));
        }
        ops.push(put(KEY_LAST_APPLIED.to_vec(), to_json(&last)?));
        self.db.write(ops, true).map_err(|e| StorageIOError::apply(last, &e))?;
        for event in events {
            // No receiver (no replicator, e.g. in storage tests) is fine.
            let _ = self.events.send(event);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = self.snapshots.incoming().map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<tokio::fs::File>) -> Result<(), StorageError> {
        let write = |e: std::io::Error| StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e));
        let mut received = *snapshot;
        received.flush().await.map_err(write)?;
        received.sync_all().await.map_err(write)?;
        let mut received = received.into_std().await;
        let path = self.snapshots.path_of(&meta.snapshot_id);
        // From here until it is recorded, no build reads the catalog or
        // removes this snapshot's file.
        let _guard = self.lock_snapshots();
        match self.snapshots.find_incoming(&received).map_err(write)? {
            Some(incoming) => self.snapshots.publish(&incoming, &path).map_err(write)?,
            None => {
                // Not one of our incoming files (or already cleaned up): copy it.
                let (mut file, tmp) = self.snapshots.temp().map_err(write)?;
                std::io::Seek::rewind(&mut received).map_err(write)?;
                std::io::copy(&mut received, &mut file).and_then(|_| file.sync_all()).map_err(write)?;
                self.snapshots.publish(&tmp, &path).map_err(write)?;
            }
        }
        self.apply_snapshot_file(meta, &path)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        // The meta and its file together: a build or install finishing
        // meanwhile replaces both.
        let (meta, file) = {
            let _guard = self.lock_snapshots();
            let Some(meta) = self.current_snapshot_meta()? else { return Ok(None) };
            let path = self.snapshots.path_of(&meta.snapshot_id);
            match std::fs::File::open(&path) {
                Ok(file) => (meta, file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(snapshot = %meta.snapshot_id, path = %path.display(), "the current snapshot's file is missing; a new one will be built");
                    return Ok(None);
                }
                Err(e) => return Err(StorageIOError::read_snapshot(Some(meta.signature()), &e).into()),
            }
        };
        Ok(Some(Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) }))
    }
}

fn put(key: Vec<u8>, value: Vec<u8>) -> DbOp {
    DbOp::Put { cf: CF_CATALOG, key, value }
}

fn node_key(node_id: u64) -> Vec<u8> {
    [NODE_PREFIX, &node_id.to_be_bytes()].concat()
}

fn blob_prefix(sha256: &Sha256) -> Vec<u8> {
    [BLOB_PREFIX, sha256.to_hex().as_bytes(), b"/"].concat()
}

fn placement_key(sha256: &Sha256, node_id: u64) -> Vec<u8> {
    [blob_prefix(sha256), node_id.to_be_bytes().to_vec()].concat()
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;
