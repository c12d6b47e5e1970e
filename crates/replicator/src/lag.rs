//! Replication lag: for every member, the referenced blobs placement does
//! not list for it, their bytes, and how long the oldest has been missing
//! (from when this node applied its catalog entry).
//!
//! Kept incrementally, so asking costs O(members) (O(missing blobs) after
//! a change), never O(catalog): [`LagBook`] holds, per member, only the
//! blobs it lacks, and the event follower keeps it up to date from the
//! applied log (a zip referenced, a copy stored, lost or purged). A full
//! count — every zip reference and every placement key, streamed, merged in
//! sha256 order — runs only at start-up, after a snapshot install, when the
//! follower missed events, when a member lost a blob whose size the book
//! does not know, or when the membership changed; it runs in a blocking
//! thread, one at a time, while callers get the last table (events applied
//! meanwhile are replayed on its result).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use api::{Lag, NodeLag};
use parking_lot::Mutex;
use raft::ControlPlane;
use store::{Catalog, Sha256};

use crate::inner::now_ms;

/// Changes seen during a full count, replayed on its result; past this many
/// the book counts again instead.
const REPLAY_CAP: usize = 100_000;

/// One blob a member lacks.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Gap {
    size: u64,
    /// When this node applied the entry that referenced it (ms since the
    /// epoch), or first counted it missing.
    since_ms: u64,
}

/// A change of the applied state that moves the lag.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// A zip is referenced; `holders` is its placement when the event was read.
    Zip {
        sha: Sha256,
        size: u64,
        holders: Vec<u64>,
    },
    Stored {
        sha: Sha256,
        node: u64,
    },
    Lost {
        sha: Sha256,
        node: u64,
    },
    Purged {
        sha: Sha256,
    },
}

/// Per-member totals of the missing blobs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Totals {
    blobs: u64,
    bytes: u64,
    oldest_ms: Option<u64>,
}

#[derive(Default)]
struct Book {
    /// The members counted; `None` until the first full count finished.
    members: Option<Vec<u64>>,
    missing: BTreeMap<u64, HashMap<Sha256, Gap>>,
    /// A full count is needed.
    stale: bool,
    /// A full count is running; `replay` collects what changes meanwhile.
    counting: bool,
    replay: Vec<Change>,
    replay_overflow: bool,
    /// Totals per member, rebuilt after a change (`None`: changed).
    totals: Option<BTreeMap<u64, Totals>>,
    /// Why the last full count failed, and when.
    failed: Option<(Instant, String)>,
}

impl Book {
    fn apply(&mut self, change: Change, now: u64) {
        if self.counting {
            if self.replay.len() < REPLAY_CAP {
                self.replay.push(change.clone());
            } else {
                self.replay_overflow = true;
            }
        }
        let Some(members) = &self.members else { return };
        self.totals = None;
        match change {
            Change::Zip { sha, size, holders } => {
                for node in members.iter().filter(|n| !holders.contains(n)) {
                    self.missing.entry(*node).or_default().entry(sha).or_insert(Gap { size, since_ms: now });
                }
            }
            Change::Stored { sha, node } => {
                if let Some(gaps) = self.missing.get_mut(&node) {
                    gaps.remove(&sha);
                }
            }
            Change::Lost { sha, node } => {
                if !members.contains(&node) {
                    return;
                }
                // Referenced and missing elsewhere: its size is known here.
                let known = self.missing.values().find_map(|gaps| gaps.get(&sha)).map(|g| g.size);
                match known {
                    Some(size) => {
                        self.missing.entry(node).or_default().entry(sha).or_insert(Gap { size, since_ms: now });
                    }
                    // Held by every other member (or not referenced): only
                    // the catalog knows; count again.
                    None => self.stale = true,
                }
            }
            Change::Purged { sha } => {
                for gaps in self.missing.values_mut() {
                    gaps.remove(&sha);
                }
            }
        }
    }

    fn totals(&mut self) -> &BTreeMap<u64, Totals> {
        let members = self.members.as_deref().unwrap_or_default();
        let missing = &self.missing;
        self.totals.get_or_insert_with(|| {
            members
                .iter()
                .map(|node| {
                    let mut t = Totals::default();
                    for gap in missing.get(node).into_iter().flat_map(HashMap::values) {
                        t.blobs += 1;
                        t.bytes += gap.size;
                        t.oldest_ms = Some(t.oldest_ms.map_or(gap.since_ms, |o| o.min(gap.since_ms)));
                    }
                    (*node, t)
                })
                .collect()
        })
    }
}

/// The lag of every member, kept up to date from the applied log.
pub(crate) struct LagBook {
    catalog: Catalog,
    control: ControlPlane,
    book: Mutex<Book>,
}

impl LagBook {
    /// An empty book; [`LagBook::recount`] fills it.
    pub(crate) fn new(catalog: Catalog, control: ControlPlane) -> Arc<LagBook> {
        Arc::new(LagBook { catalog, control, book: Mutex::new(Book::default()) })
    }

    /// Applies one change of the applied state (from the event follower).
    pub(crate) fn note(self: &Arc<Self>, change: Change) {
        let stale = {
            let mut book = self.book.lock();
            book.apply(change, now_ms());
            book.stale && !book.counting
        };
        if stale {
            self.recount();
        }
    }

    /// Counts everything again (in a blocking thread, one count at a time;
    /// asking while one runs makes it count once more after).
    pub(crate) fn recount(self: &Arc<Self>) {
        {
            let mut book = self.book.lock();
            book.stale = true;
            if book.counting {
                return;
            }
            book.counting = true;
        }
        let this = self.clone();
        let job = move || this.count_until_fresh();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(job);
            }
            Err(_) => job(),
        }
    }

    fn count_until_fresh(&self) {
        loop {
            let members = {
                let mut book = self.book.lock();
                book.stale = false;
                book.replay.clear();
                book.replay_overflow = false;
                let mut members = self.control.members();
                members.sort_unstable();
                members
            };
            let started = Instant::now();
            let counted = count(&self.catalog, &self.control, &members);
            let mut book = self.book.lock();
            match counted {
                Ok(counted) => {
                    let now = now_ms();
                    let missing: BTreeMap<u64, HashMap<Sha256, Gap>> = counted
                        .into_iter()
                        .map(|(node, gaps)| {
                            let before = book.missing.get(&node);
                            let gaps = gaps
                                .into_iter()
                                .map(|(sha, size)| {
                                    let since_ms = before.and_then(|b| b.get(&sha)).map_or(now, |g| g.since_ms);
                                    (sha, Gap { size, since_ms })
                                })
                                .collect();
                            (node, gaps)
                        })
                        .collect();
                    let total: usize = missing.values().map(HashMap::len).sum();
                    book.members = Some(members);
                    book.missing = missing;
                    book.totals = None;
                    book.failed = None;
                    book.counting = false;
                    let replay = std::mem::take(&mut book.replay);
                    for change in replay {
                        book.apply(change, now);
                    }
                    if book.replay_overflow {
                        book.stale = true;
                    }
                    tracing::info!(missing = total, millis = started.elapsed().as_millis() as u64, "counted replication lag");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "counting replication lag failed");
                    book.failed = Some((Instant::now(), e.to_string()));
                    book.counting = false;
                    return;
                }
            }
            if !book.stale {
                return;
            }
            book.counting = true;
        }
    }

    /// Missing blobs and bytes per member, and the age of the oldest one.
    /// O(members) while nothing changed, O(missing blobs) after a change;
    /// starts a full count (and answers from the last table meanwhile)
    /// when the membership changed.
    pub(crate) fn lag(self: &Arc<Self>) -> Lag {
        let mut members = self.control.members();
        members.sort_unstable();
        let mut book = self.book.lock();
        let retry = match &book.failed {
            Some((at, _)) => at.elapsed().as_secs() >= 1,
            None => true,
        };
        let outdated = book.stale || book.members.as_ref().is_some_and(|m| *m != members) || book.members.is_none();
        if outdated && !book.counting && retry {
            drop(book);
            self.recount();
            book = self.book.lock();
        }
        if book.members.is_none() {
            return Lag::Unavailable {
                error: match &book.failed {
                    Some((_, e)) => e.clone(),
                    None => "counting the catalog's blobs; lag follows shortly".to_string(),
                },
            };
        }
        let now = now_ms();
        let nodes = book
            .totals()
            .iter()
            .map(|(node, t)| {
                let age = t.oldest_ms.map_or(0.0, |o| now.saturating_sub(o) as f64 / 1000.0);
                (*node, NodeLag { missing_blobs: t.blobs, missing_bytes: t.bytes, oldest_missing_seconds: age })
            })
            .collect();
        Lag::Nodes(nodes)
    }
}

/// For each of `members`, the referenced blobs placement does not list for
/// it, with their sizes. Streams the zip references (sorted by sha256: 40
/// bytes each) and merges them with the placement keys, which are stored
/// in sha256 order; nothing else is held.
fn count(catalog: &Catalog, control: &ControlPlane, members: &[u64]) -> Result<BTreeMap<u64, HashMap<Sha256, u64>>, store::Error> {
    let mut zips: Vec<(Sha256, u64)> = Vec::new();
    catalog.for_each_zip(|zip| {
        zips.push((zip.sha256, zip.size));
        true
    })?;
    zips.sort_unstable();
    zips.dedup_by_key(|z| z.0);
    let mut merge = Merge { zips: &zips, next: 0, members, missing: members.iter().map(|m| (*m, HashMap::new())).collect() };
    let mut group: Option<(Sha256, Vec<u64>)> = None;
    control.for_each_placement(|sha, node| match &mut group {
        Some((current, holders)) if *current == sha => holders.push(node),
        _ => {
            if let Some((current, holders)) = group.replace((sha, vec![node])) {
                merge.settle(Some((current, &holders)));
            }
        }
    })?;
    if let Some((current, holders)) = group.take() {
        merge.settle(Some((current, &holders)));
    }
    merge.settle(None);
    Ok(merge.missing)
}

/// The merge of sorted zip references with placement groups.
struct Merge<'a> {
    zips: &'a [(Sha256, u64)],
    next: usize,
    members: &'a [u64],
    missing: BTreeMap<u64, HashMap<Sha256, u64>>,
}

impl Merge<'_> {
    /// Settles every zip before the placement group `upto` (held by
    /// nobody) and the zip of that group (held by its holders); `None`:
    /// every zip left.
    fn settle(&mut self, upto: Option<(Sha256, &[u64])>) {
        while let Some(&(sha, size)) = self.zips.get(self.next) {
            let holders: &[u64] = match upto {
                Some((group, _)) if sha > group => return,
                Some((group, holders)) if sha == group => holders,
                _ => &[],
            };
            for node in self.members.iter().filter(|n| !holders.contains(n)) {
                if let Some(gaps) = self.missing.get_mut(node) {
                    gaps.insert(sha, size);
                }
            }
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> Sha256 {
        Sha256::of(&[n])
    }

    fn counted(book: &mut Book) -> Vec<(u64, u64, u64)> {
        book.totals().iter().map(|(n, t)| (*n, t.blobs, t.bytes)).collect()
    }

    #[test]
    fn changes_move_the_lag_of_the_members_they_name() {
        let mut book = Book { members: Some(vec![1, 2, 3]), ..Default::default() };
        book.apply(Change::Zip { sha: sha(1), size: 10, holders: vec![1] }, 100);
        book.apply(Change::Zip { sha: sha(2), size: 20, holders: vec![] }, 200);
        assert_eq!(counted(&mut book), [(1, 1, 20), (2, 2, 30), (3, 2, 30)]);
        assert_eq!(book.totals()[&2].oldest_ms, Some(100));

        book.apply(Change::Stored { sha: sha(1), node: 2 }, 300);
        book.apply(Change::Stored { sha: sha(2), node: 1 }, 300);
        assert_eq!(counted(&mut book), [(1, 0, 0), (2, 1, 20), (3, 2, 30)]);

        // A member lost a blob another still lacks: its size is known.
        book.apply(Change::Lost { sha: sha(2), node: 1 }, 400);
        assert_eq!(counted(&mut book), [(1, 1, 20), (2, 1, 20), (3, 2, 30)]);
        assert!(!book.stale);
        // Held everywhere else: only a count can tell its size.
        book.apply(Change::Stored { sha: sha(1), node: 3 }, 400);
        book.apply(Change::Lost { sha: sha(1), node: 2 }, 400);
        assert!(book.stale, "a lost blob of unknown size calls for a count");

        book.apply(Change::Purged { sha: sha(2) }, 500);
        assert_eq!(counted(&mut book), [(1, 0, 0), (2, 0, 0), (3, 0, 0)]);
        // A zip seen again keeps its first time.
        book.apply(Change::Zip { sha: sha(3), size: 30, holders: vec![1, 2] }, 600);
        book.apply(Change::Zip { sha: sha(3), size: 30, holders: vec![1, 2] }, 900);
        assert_eq!(book.totals()[&3].oldest_ms, Some(600));
        assert_eq!(counted(&mut book), [(1, 0, 0), (2, 0, 0), (3, 1, 30)]);
    }

    #[test]
    fn changes_during_a_count_are_kept_for_replay() {
        let mut book = Book { members: Some(vec![1, 2]), counting: true, ..Default::default() };
        book.apply(Change::Stored { sha: sha(1), node: 2 }, 1);
        assert_eq!(book.replay.len(), 1);
    }

    #[test]
    fn the_merge_settles_zips_held_by_nobody_some_or_all() {
        let mut zips = vec![(sha(1), 1), (sha(2), 2), (sha(3), 3), (sha(4), 4)];
        zips.sort_unstable();
        let members = [1, 2];
        let mut merge = Merge { zips: &zips, next: 0, members: &members, missing: members.iter().map(|m| (*m, HashMap::new())).collect() };
        // Placement groups in sha order: the second zip held by both, the
        // fourth by node 2, and a blob no zip references.
        let mut groups = vec![(zips[1].0, vec![1, 2]), (zips[3].0, vec![2]), (sha(9), vec![1])];
        groups.sort_unstable();
        for (sha, holders) in &groups {
            merge.settle(Some((*sha, holders)));
        }
        merge.settle(None);
        let mut one: Vec<Sha256> = merge.missing[&1].keys().copied().collect();
        one.sort_unstable();
        let mut two: Vec<Sha256> = merge.missing[&2].keys().copied().collect();
        two.sort_unstable();
        assert_eq!(one, [zips[0].0, zips[2].0, zips[3].0]);
        assert_eq!(two, [zips[0].0, zips[2].0]);
    }
}
