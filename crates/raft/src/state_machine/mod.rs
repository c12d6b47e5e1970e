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
//!
//! - `reads`: placement, gateway URLs, audit and applied state, for readers.
//! - `apply`: openraft's `RaftStateMachine`: applying entries, and the
//!   snapshot calls openraft makes.
//! - `snapshots`: building and installing snapshot files under the
//!   snapshot lock.

mod apply;
mod reads;
mod snapshots;

use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::{AnyError, StorageIOError};
use store::{Db, DbOp, Sha256, CF_CATALOG};
use tokio::sync::broadcast;

use crate::snapshot_dir::SnapshotDir;
use crate::types::{StateEvent, StorageError};

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
mod tests;
