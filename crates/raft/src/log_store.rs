//! The raft log and vote on RocksDB.
//!
//! `raft_log`: big-endian index → JSON entry. `raft_meta`: the vote, the
//! committed log id and the last purged log id, each JSON under its own key.
//! Every write is synced before openraft hears that it is done.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use store::{Db, DbOp, CF_RAFT_LOG, CF_RAFT_META};

use crate::codec::{from_json, index_key, read_err, to_json, write_err};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::Error;

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_CLUSTER_ID: &[u8] = b"cluster_id";

#[derive(Clone)]
/// The raft log storage ([`RaftLogStorage`] and [`RaftLogReader`]).
pub struct LogStore {
    db: Db,
}

impl LogStore {
    pub fn new(db: Db) -> Self {
        LogStore { db }
    }

    /// Records `cluster_id` as the owner of this data dir on first start;
    /// refuses, changing nothing, a data dir that belongs to another cluster.
    pub(crate) fn claim_cluster(&self, cluster_id: &str) -> Result<(), Error> {
        match self.db.get(CF_RAFT_META, KEY_CLUSTER_ID)? {
            Some(stored) if stored == cluster_id.as_bytes() => Ok(()),
            Some(stored) => {
                Err(Error::WrongCluster { stored: String::from_utf8_lossy(&stored).into_owned(), configured: cluster_id.to_string() })
            }
            None => {
                let op = DbOp::Put { cf: CF_RAFT_META, key: KEY_CLUSTER_ID.to_vec(), value: cluster_id.as_bytes().to_vec() };
                Ok(self.db.write(vec![op], true)?)
            }
        }
    }

    /// The last committed index openraft recorded (possibly a little behind).
    pub(crate) fn committed_index(&self) -> Option<u64> {
        self.get_meta::<Option<LogId>>(KEY_COMMITTED).ok().flatten().flatten().map(|id| id.index)
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let name = String::from_utf8_lossy(key);
        self.db.get(CF_RAFT_META, key).map_err(read_err)?.map(|v| from_json(&name, &v)).transpose()
    }

    fn put_meta(key: &[u8], value: &impl serde::Serialize) -> Result<DbOp, StorageError> {
        Ok(DbOp::Put { cf: CF_RAFT_META, key: key.to_vec(), value: to_json(value)? })
    }

    fn write_synced(&self, ops: Vec<DbOp>) -> Result<(), StorageError> {
        self.db.write(ops, true).map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.checked_add(1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        self.read_entries(start, end, usize::MAX)
    }

    /// What openraft reads to replicate: a prefix of `[start, end)` of about
    /// [`MAX_READ_BYTES`] (at least one entry), so a follower far behind does
    /// not make the leader decode hundreds of MiB per AppendEntries; the
    /// network trims the batch further to its byte budget.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        self.read_entries(start, Some(end), MAX_READ_BYTES)
    }
}

/// The most bytes of stored entries [`LogStore::limited_get_log_entries`]
/// reads for one AppendEntries: the largest batch budget.
const MAX_READ_BYTES: usize = 4 << 20;

impl LogStore {
    fn read_entries(&self, start: u64, end: Option<u64>, max_bytes: usize) -> Result<Vec<Entry>, StorageError> {
        let end_key = end.map(index_key);
        let rows =
            self.db.scan_range_limited(CF_RAFT_LOG, &index_key(start), end_key.as_ref().map(|k| &k[..]), max_bytes).map_err(read_err)?;
        rows.iter().map(|(_, value)| from_json("log entry", value)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last_log_id = match self.db.last(CF_RAFT_LOG).map_err(read_err)? {
            Some((_, value)) => Some(from_json::<Entry>("log entry", &value)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_synced(vec![Self::put_meta(KEY_VOTE, vote)?])
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: a committed id that is lost in a crash only means less
        // is re-applied at startup; it is never ahead of the synced log.
        let op = Self::put_meta(KEY_COMMITTED, &committed)?;
        self.db.write(vec![op], false).map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut ops = Vec::new();
        for entry in entries {
            ops.push(DbOp::Put { cf: CF_RAFT_LOG, key: index_key(entry.log_id.index).to_vec(), value: to_json(&entry)? });
        }
        // Synced before the callback: openraft counts the entries as durable
        // (and votes and commits on that) as soon as it is called. On error
        // the callback is dropped, which openraft treats as a failed write.
        self.db.write(ops, true).map_err(|e| StorageIOError::write_logs(&e))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating raft log from here on");
        self.write_synced(vec![
            DbOp::DeleteRange { cf: CF_RAFT_LOG, from: index_key(log_id.index).to_vec(), to: index_key(u64::MAX).to_vec() },
            DbOp::Delete { cf: CF_RAFT_LOG, key: index_key(u64::MAX).to_vec() },
        ])
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging raft log up to here");
        // The purge mark and the deletion go in one batch, so the log never
        // has a hole that the mark does not explain.
        self.write_synced(vec![
            Self::put_meta(KEY_LAST_PURGED, &log_id)?,
            DbOp::DeleteRange { cf: CF_RAFT_LOG, from: index_key(0).to_vec(), to: index_key(log_id.index.saturating_add(1)).to_vec() },
        ])
    }
}
