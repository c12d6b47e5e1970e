//! openraft's [`RaftStateMachine`] on the catalog: applying committed
//! entries in one atomic batch each, and the snapshot calls openraft makes
//! (receive, install, current), which take the snapshot lock.

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use store::{Catalog, CatalogOp, DbOp, Pending, CF_CATALOG, PART_ZIP};
use tokio::io::AsyncWriteExt;

use super::{blob_prefix, node_key, placement_key, put, StateMachine, KEY_LAST_APPLIED, KEY_MEMBERSHIP};
use crate::codec::{read_err, to_json};
use crate::types::{Applied, Command, Entry, LogId, Snapshot, SnapshotMeta, StateEvent, StorageError, StoredMembership, TypeConfig};

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
