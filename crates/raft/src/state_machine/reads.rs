//! What the rest of Flotilla reads from the state machine: placement,
//! announced gateway URLs, the audit log, how far it has applied, and its
//! events.

use store::{AuditRecord, Sha256, CF_CATALOG};
use tokio::sync::broadcast;

use super::{blob_prefix, node_key, StateMachine, BLOB_PREFIX, KEY_LAST_APPLIED, KEY_MEMBERSHIP};
use crate::codec::{from_json, read_err};
use crate::types::{LogId, StateEvent, StorageError, StoredMembership};

impl StateMachine {
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

    pub(super) fn last_applied(&self) -> Result<Option<LogId>, StorageError> {
        let value = self.db.get(CF_CATALOG, KEY_LAST_APPLIED).map_err(read_err)?;
        Ok(value.map(|v| from_json::<Option<LogId>>("last applied log id", &v)).transpose()?.flatten())
    }

    pub(super) fn membership(&self) -> Result<StoredMembership, StorageError> {
        let value = self.db.get(CF_CATALOG, KEY_MEMBERSHIP).map_err(read_err)?;
        Ok(value.map(|v| from_json("last membership", &v)).transpose()?.unwrap_or_default())
    }
}
