//! Replication lag: for every member, the referenced blobs placement does
//! not list for it, their bytes, and how long the oldest has been missing
//! (from when this node applied its catalog entry).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::inner::{now_ms, Inner};
use api::{Lag, NodeLag};
use store::Sha256;

/// How long a computed per-node lag table is reused.
const LAG_CACHE: Duration = Duration::from_secs(1);
/// Blobs whose apply time is remembered for the lag ages.
const FIRST_SEEN_CAP: usize = 100_000;

impl Inner {
    /// Notes when a zip entry was applied here, for the per-member age of
    /// the oldest missing blob (bounded: past the cap, the lag computation
    /// records what it finds missing instead).
    pub(crate) fn seen(&self, sha: Sha256) {
        let mut first = self.first_seen.lock();
        if first.len() < FIRST_SEEN_CAP {
            first.entry(sha).or_insert_with(now_ms);
        }
    }

    /// Missing blobs and bytes per member, and the age of the oldest one,
    /// from the catalog and placement.
    pub(crate) fn lag(&self) -> Lag {
        if let Some((at, lag)) = &*self.lag.lock() {
            if at.elapsed() < LAG_CACHE {
                return lag.clone();
            }
        }
        let zips: BTreeMap<Sha256, u64> = match self.catalog.all_zips() {
            Ok(zips) => zips.into_iter().map(|(_, _, z)| (z.sha256, z.size)).collect(),
            Err(e) => return Lag::Unavailable { error: e.to_string() },
        };
        let mut held: HashMap<u64, HashSet<Sha256>> = HashMap::new();
        for (sha, node) in self.control.placements() {
            held.entry(node).or_default().insert(sha);
        }
        let now = now_ms();
        let mut first_seen = self.first_seen.lock();
        let mut still_missing = HashSet::new();
        let mut out = BTreeMap::new();
        for node in self.control.members() {
            let theirs = held.get(&node);
            let (mut blobs, mut bytes, mut oldest) = (0u64, 0u64, now);
            for (sha, size) in &zips {
                if !theirs.is_some_and(|h| h.contains(sha)) {
                    blobs += 1;
                    bytes += size;
                    let since = *first_seen.entry(*sha).or_insert(now);
                    oldest = oldest.min(since);
                    still_missing.insert(*sha);
                }
            }
            let age = now.saturating_sub(oldest) as f64 / 1000.0;
            out.insert(node, NodeLag { missing_blobs: blobs, missing_bytes: bytes, oldest_missing_seconds: age });
        }
        first_seen.retain(|sha, _| still_missing.contains(sha));
        let lag = Lag::Nodes(out);
        *self.lag.lock() = Some((Instant::now(), lag.clone()));
        lag
    }
}
