//! The audit log: who changed what through the admin API, when, and how it
//! ended. Kept in the catalog column family under `0xFF audit/<u64be
//! index>` (the raft log index on a cluster, where the state machine writes
//! it; a counter on a single node), so it travels with snapshots.

use serde::{Deserialize, Serialize};

use crate::db::{Db, DbOp, CF_CATALOG};
use crate::{Error, Result};

const PREFIX: &[u8] = b"\xFFaudit/";

/// One admin call that changed (or tried to change) the mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The name of the admin token used.
    pub who: String,
    /// The admin call, e.g. `purge`.
    pub action: String,
    /// What it acted on, e.g. `example.com/m@v1.2.3`.
    pub target: String,
    /// When the node that recorded it received the call, ms since the Unix epoch.
    pub at_ms: u64,
    /// `ok …`, or why it failed.
    pub result: String,
    /// The node the caller talked to.
    pub via: u64,
    /// Set when read back: the index the record is kept under.
    #[serde(default)]
    pub index: u64,
}

/// The write that records `record` under `index`.
pub fn audit_op(index: u64, record: &AuditRecord) -> Result<DbOp> {
    let value = serde_json::to_vec(record).map_err(|e| Error::Decode { key: "audit record".into(), reason: e.to_string() })?;
    Ok(DbOp::Put { cf: CF_CATALOG, key: [PREFIX, &index.to_be_bytes()].concat(), value })
}

/// Records `record` after the last one (a single node, which has no log
/// index); returns its index.
pub fn append_audit(db: &Db, record: &AuditRecord) -> Result<u64> {
    let last = read_audit(db, 1)?.last().map_or(0, |r| r.index);
    db.write(vec![audit_op(last + 1, record)?], true)?;
    Ok(last + 1)
}

/// The last `limit` records, oldest first; undecodable ones are skipped.
pub fn read_audit(db: &Db, limit: usize) -> Result<Vec<AuditRecord>> {
    let pairs = db.scan_prefix(CF_CATALOG, PREFIX)?;
    let skip = pairs.len().saturating_sub(limit);
    Ok(pairs
        .iter()
        .skip(skip)
        .filter_map(|(k, v)| {
            let index = u64::from_be_bytes(k.get(PREFIX.len()..)?.try_into().ok()?);
            let record: AuditRecord = serde_json::from_slice(v).ok()?;
            Some(AuditRecord { index, ..record })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_and_read_back_newest_last() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        for who in ["a", "b", "c"] {
            append_audit(&db, &AuditRecord { who: who.into(), action: "purge".into(), ..Default::default() }).unwrap();
        }
        let last_two = read_audit(&db, 2).unwrap();
        assert_eq!(last_two.iter().map(|r| (r.index, r.who.as_str())).collect::<Vec<_>>(), [(2, "b"), (3, "c")]);
    }
}
