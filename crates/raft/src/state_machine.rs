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
//! ```
//!
//! Each applied entry that references a zip, and each installed snapshot, is
//! also announced on a broadcast channel ([`StateEvent`]) for the replicator.
//!
//! The current snapshot (meta as JSON, data as built) is kept in `raft_meta`.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use store::{Catalog, Db, DbOp, CF_CATALOG, CF_RAFT_META};

use crate::codec::{from_json, read_err, to_json};
use crate::snapshot;
use store::CatalogOp;
use tokio::sync::broadcast;

use crate::types::{
    Applied, Command, Entry, LogId, Snapshot, SnapshotMeta, StateEvent, StorageError, StoredMembership, TypeConfig,
};

const KEY_LAST_APPLIED: &[u8] = b"\xFFlast_applied";
const KEY_MEMBERSHIP: &[u8] = b"\xFFmembership";
const NODE_PREFIX: &[u8] = b"\xFFnode/";
const BLOB_PREFIX: &[u8] = b"\xFFblob/";
/// Events buffered for a slow replicator before it is told to rescan.
const EVENT_BUFFER: usize = 16_384;
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

/// The catalog state machine ([`RaftStateMachine`] and its snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    db: Db,
    events: broadcast::Sender<StateEvent>,
    /// Serializes replacing the stored current snapshot (a build finishing
    /// while a snapshot is installed).
    snapshot_lock: Arc<Mutex<()>>,
}

impl StateMachine {
    pub fn new(db: Db) -> Self {
        StateMachine { db, events: broadcast::channel(EVENT_BUFFER).0, snapshot_lock: Arc::new(Mutex::new(())) }
    }

    /// Events of entries applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.events.subscribe()
    }

    /// The nodes recorded as holding blob `sha256` (hex), ascending.
    pub fn placement(&self, sha256: &str) -> Result<Vec<u64>, store::Error> {
        let prefix = blob_prefix(sha256);
        let pairs = self.db.scan_prefix(CF_CATALOG, &prefix)?;
        Ok(pairs.iter().filter_map(|(k, _)| Some(u64::from_be_bytes(k[prefix.len()..].try_into().ok()?))).collect())
    }

    /// Every placement record: (blob sha256 hex, node id).
    pub fn placements(&self) -> Result<Vec<(String, u64)>, store::Error> {
        let pairs = self.db.scan_prefix(CF_CATALOG, BLOB_PREFIX)?;
        Ok(pairs
            .iter()
            .filter_map(|(k, _)| {
                let rest = &k[BLOB_PREFIX.len()..];
                let (hex, node) = (rest.get(..64)?, rest.get(65..)?);
                Some((String::from_utf8(hex.to_vec()).ok()?, u64::from_be_bytes(node.try_into().ok()?)))
            })
            .collect())
    }

    /// The gateway URL `node_id` announced, if it did.
    pub fn gateway_url(&self, node_id: u64) -> Result<Option<String>, store::Error> {
        let url = self.db.get(CF_CATALOG, &node_key(node_id))?;
        Ok(url.map(|u| String::from_utf8_lossy(&u).into_owned()))
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

    /// Makes `meta`/`data` the current snapshot unless a newer one is stored.
    fn save_current_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(stored) = self.current_snapshot_meta()? {
            if stored.last_log_id > meta.last_log_id {
                return Ok(());
            }
        }
        let ops = snapshot_ops(meta, data)?;
        self.db.write(ops, false).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e).into())
    }

    fn current_snapshot_meta(&self) -> Result<Option<SnapshotMeta>, StorageError> {
        let value = self.db.get(CF_RAFT_META, KEY_SNAPSHOT_META).map_err(read_err)?;
        value.map(|v| from_json("snapshot meta", &v)).transpose()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // One RocksDB iterator sees one point in time, so the pairs and the
        // 0xFF bookkeeping among them agree even while entries are applied.
        let pairs = self.db.scan_range(CF_CATALOG, &[], None).map_err(read_err)?;
        let lookup = |key: &[u8]| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let last_log_id = lookup(KEY_LAST_APPLIED)
            .map(|v| from_json::<Option<LogId>>("last applied log id", v))
            .transpose()?
            .flatten();
        let last_membership: StoredMembership =
            lookup(KEY_MEMBERSHIP).map(|v| from_json("last membership", v)).transpose()?.unwrap_or_default();
        let built_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{built_ms}", id.leader_id, id.index),
            None => format!("--{built_ms}"),
        };
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let data = snapshot::encode(&pairs);
        self.save_current_snapshot(&meta, &data)?;
        tracing::info!(snapshot = %meta.snapshot_id, pairs = pairs.len(), bytes = data.len(), "built catalog snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
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
        // Zips put earlier in this batch, which the database does not show yet.
        let mut batch_zips = std::collections::HashMap::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Command::Catalog(op)) => {
                    match &op {
                        CatalogOp::PutVersion { module, version, parts } => {
                            if let Some(zip) = &parts.zip {
                                events.push(StateEvent::Zip { sha256: zip.sha256.clone(), size: zip.size });
                                batch_zips.insert((module.clone(), version.clone()), zip.sha256.clone());
                            }
                        }
                        CatalogOp::Purge { module, version } => {
                            // The purged zip's placement goes too: the blob is
                            // about to be deleted everywhere, and min_copies
                            // must not count those copies if it comes back.
                            let key = (module.clone(), version.clone());
                            let sha = match batch_zips.remove(&key) {
                                Some(sha) => Some(sha),
                                None => catalog.zip(module, version).map_err(read_err)?.map(|z| z.sha256),
                            };
                            if let Some(sha) = sha.filter(|s| is_sha_hex(s)) {
                                let held = self.db.scan_prefix(CF_CATALOG, &blob_prefix(&sha)).map_err(read_err)?;
                                ops.extend(held.into_iter().map(|(key, _)| DbOp::Delete { cf: CF_CATALOG, key }));
                            }
                        }
                        CatalogOp::PutList { .. } | CatalogOp::PutLatest { .. } => {}
                    }
                    ops.extend(Catalog::ops_for(&op));
                }
                EntryPayload::Normal(Command::AnnounceNode { node_id, gateway_url }) => {
                    ops.push(put(node_key(node_id), gateway_url.into_bytes()));
                }
                EntryPayload::Normal(Command::BlobStored { node_id, blobs }) => {
                    for sha256 in blobs.iter().filter(|s| is_sha_hex(s)) {
                        ops.push(put([blob_prefix(sha256), node_id.to_be_bytes().to_vec()].concat(), Vec::new()));
                    }
                }
                EntryPayload::Membership(m) => membership = Some(StoredMembership::new(Some(entry.log_id), m)),
            }
            replies.push(Applied { index: entry.log_id.index });
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let pairs = snapshot::decode(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(e)))?;
        tracing::info!(snapshot = %meta.snapshot_id, pairs = pairs.len(), bytes = data.len(), "installing catalog snapshot");

        // Replace the whole column family in one synced batch: a crash leaves
        // either the old catalog or the new one, never a mix.
        let mut ops = Vec::with_capacity(pairs.len() + 5);
        if let Some((mut end, _)) = self.db.last(CF_CATALOG).map_err(read_err)? {
            end.push(0);
            ops.push(DbOp::DeleteRange { cf: CF_CATALOG, from: Vec::new(), to: end });
        }
        ops.extend(pairs.into_iter().map(|(key, value)| put(key, value)));
        ops.push(put(KEY_LAST_APPLIED.to_vec(), to_json(&meta.last_log_id)?));
        ops.push(put(KEY_MEMBERSHIP.to_vec(), to_json(&meta.last_membership)?));
        ops.extend(snapshot_ops(meta, &data)?);

        let _guard = self.snapshot_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.db.write(ops, true).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let _ = self.events.send(StateEvent::Reset);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(meta) = self.current_snapshot_meta()? else { return Ok(None) };
        let data = self.db.get(CF_RAFT_META, KEY_SNAPSHOT_DATA).map_err(read_err)?.unwrap_or_default();
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

fn put(key: Vec<u8>, value: Vec<u8>) -> DbOp {
    DbOp::Put { cf: CF_CATALOG, key, value }
}

fn node_key(node_id: u64) -> Vec<u8> {
    [NODE_PREFIX, &node_id.to_be_bytes()].concat()
}

fn blob_prefix(sha256: &str) -> Vec<u8> {
    [BLOB_PREFIX, sha256.as_bytes(), b"/"].concat()
}

fn is_sha_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn snapshot_ops(meta: &SnapshotMeta, data: &[u8]) -> Result<Vec<DbOp>, StorageError> {
    Ok(vec![
        DbOp::Put { cf: CF_RAFT_META, key: KEY_SNAPSHOT_META.to_vec(), value: to_json(meta)? },
        DbOp::Put { cf: CF_RAFT_META, key: KEY_SNAPSHOT_DATA.to_vec(), value: data.to_vec() },
    ])
}
