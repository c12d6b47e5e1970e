//! Snapshots of the catalog as files, and the lock that keeps their builds
//! and installs apart: recording the current one, installing a file (in
//! batches, finished at start-up after a crash), streaming the catalog into
//! a new one, and moving the bytes of earlier versions to a file.

use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::{AnyError, RaftSnapshotBuilder, StorageIOError};
use store::{DbOp, CF_CATALOG, CF_RAFT_META};

use super::{put, StateMachine, KEY_LAST_APPLIED, KEY_MEMBERSHIP, KEY_SNAPSHOT_DATA, KEY_SNAPSHOT_INSTALLING, KEY_SNAPSHOT_META};
use crate::codec::{from_json, read_err, to_json};
use crate::snapshot::{self, PairReader};
use crate::types::{LogId, Snapshot, SnapshotMeta, StateEvent, StorageError, StoredMembership, TypeConfig};

impl StateMachine {
    /// The meta of a snapshot whose install began but did not finish.
    pub(super) fn installing_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        let pending = self.db.get(CF_RAFT_META, KEY_SNAPSHOT_INSTALLING).map_err(read_err)?;
        pending.map(|p| from_json("interrupted snapshot install", &p)).transpose()
    }

    pub(super) fn lock_snapshots(&self) -> std::sync::MutexGuard<'_, ()> {
        self.snapshot_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    pub(super) fn remove_other_snapshots(&self, meta: &SnapshotMeta, keep: &Path) {
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
    pub(super) fn migrate_snapshot_data(&self) -> Result<(), StorageError> {
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
    pub(super) fn apply_snapshot_file(&self, meta: &SnapshotMeta, path: &Path) -> Result<(), StorageError> {
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

    pub(super) fn current_snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
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
