//! Anti-entropy: compare the catalog with the local blobs (at start-up,
//! after a snapshot and periodically), queue what is missing, re-report what
//! placement lacks, and delete blobs no catalog entry has referenced for
//! `replication.purge_grace`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use background::Worker;
use store::{Catalog, DbOp, Sha256, CF_LOCAL};

use crate::inner::{now_ms, Inner, Want};

/// `CF_LOCAL` keys marking a blob no catalog entry referenced, with when
/// that was first seen (`gc\0<sha256 hex>` → u64 ms, big endian).
const GC_PREFIX: &[u8] = b"gc\0";

pub(crate) async fn anti_entropy(inner: Arc<Inner>, worker: Worker) {
    let mut stop = worker.stop_signal();
    loop {
        worker.working("comparing the catalog with the local blobs");
        let pass = inner.clone();
        match tokio::task::spawn_blocking(move || anti_entropy_pass(&pass)).await {
            Ok(Ok(())) => worker.done(),
            Ok(Err(e)) => {
                worker.error(format_args!("anti-entropy pass: {e}"));
                tracing::warn!(error = %e, "anti-entropy pass failed");
            }
            Err(e) => {
                worker.error(format_args!("anti-entropy pass: {e}"));
                tracing::warn!(error = %e, "anti-entropy task failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.anti_entropy_interval) => {},
            _ = inner.rescan.notified() => {},
            _ = stop.changed() => return,
        }
    }
}

pub(crate) fn referenced(catalog: &Catalog) -> Result<BTreeMap<Sha256, u64>, store::Error> {
    let mut out = BTreeMap::new();
    for (_, _, zip) in catalog.all_zips()? {
        out.insert(zip.sha256, zip.size);
    }
    Ok(out)
}

fn anti_entropy_pass(inner: &Inner) -> Result<(), store::Error> {
    let started = Instant::now();
    let wanted = referenced(&inner.catalog)?;
    let mut placement: HashMap<Sha256, Vec<u64>> = HashMap::new();
    for (sha, node) in inner.control.placements() {
        placement.entry(sha).or_default().push(node);
    }
    let (mut queued, mut reported) = (0, 0);
    for (sha, size) in &wanted {
        let nodes = placement.get(sha).map(Vec::as_slice).unwrap_or(&[]);
        match inner.want(*sha, *size, Some(nodes)) {
            Want::Queued => queued += 1,
            Want::Reported => reported += 1,
            Want::Held | Want::AlreadyQueued => {}
        }
    }
    // Queued blobs the catalog no longer references (purged meanwhile).
    let mut dropped = 0;
    for sha in inner.queue.shas() {
        if !wanted.contains_key(&sha) {
            inner.queue.remove(&sha);
            let _ = std::fs::remove_file(inner.blobs.partial_path(&sha));
            dropped += 1;
        }
    }
    let in_queue = |sha: &Sha256| inner.queue.contains(sha);
    let deleted = collect_garbage(&inner.catalog, &inner.blobs, &wanted, &in_queue, inner.cfg.purge_grace, now_ms())?;
    inner.stats.deleted.fetch_add(deleted as u64, Ordering::Relaxed);
    tracing::info!(
        referenced = wanted.len(),
        queued,
        reported,
        dropped,
        deleted,
        millis = started.elapsed().as_millis() as u64,
        "anti-entropy pass"
    );
    Ok(())
}

/// Deletes local blobs (and stray partial files) that no catalog entry has
/// referenced for `grace`, as seen by passes at least `grace` apart. A blob
/// is deleted only if a second read of the catalog, just before, still does
/// not reference it and no writer has pinned it. Returns how many blobs
/// were deleted.
pub(crate) fn collect_garbage(
    catalog: &Catalog,
    blobs: &store::BlobStore,
    wanted: &BTreeMap<Sha256, u64>,
    queued: &dyn Fn(&Sha256) -> bool,
    grace: Duration,
    now: u64,
) -> Result<usize, store::Error> {
    let db = catalog.db();
    let grace = grace.as_millis() as u64;
    let mut local: Vec<Sha256> = blobs.list()?;
    local.extend(blobs.partials()?.into_iter().filter(|sha| !queued(sha)));
    let mut marks: HashMap<Sha256, u64> = HashMap::new();
    for (key, value) in db.scan_prefix(CF_LOCAL, GC_PREFIX)? {
        let sha = std::str::from_utf8(&key[GC_PREFIX.len()..]).ok().and_then(|h| h.parse().ok());
        let since = value.as_slice().try_into().ok().map(u64::from_be_bytes);
        if let (Some(sha), Some(since)) = (sha, since) {
            marks.insert(sha, since);
        }
    }
    let mut ops = Vec::new();
    let mut expired = Vec::new();
    for sha in &local {
        if wanted.contains_key(sha) {
            continue;
        }
        match marks.get(sha) {
            None => ops.push(DbOp::Put { cf: CF_LOCAL, key: gc_key(sha), value: now.to_be_bytes().to_vec() }),
            Some(&since) if now.saturating_sub(since) >= grace => expired.push(*sha),
            Some(_) => {}
        }
    }
    let local_set: HashSet<Sha256> = local.iter().copied().collect();
    for sha in marks.keys() {
        if wanted.contains_key(sha) || !local_set.contains(sha) {
            ops.push(DbOp::Delete { cf: CF_LOCAL, key: gc_key(sha) });
        }
    }
    let mut deleted = 0;
    if !expired.is_empty() {
        // A fill pins its blob before writing it and keeps the pin until
        // its catalog entry is committed: a version fetched again either
        // finished before `gc_begin` (so `again` sees it) or pinned its blob
        // since, and that blob is spared by this pass.
        blobs.gc_begin();
        let again = referenced(catalog)?;
        #[cfg(test)]
        crate::gc_tests::before_delete();
        let lock = blobs.gc_lock();
        for sha in expired.iter().filter(|sha| !again.contains_key(sha)) {
            let _ = std::fs::remove_file(blobs.partial_path(sha));
            if lock.delete_unpinned(sha)? {
                tracing::info!(blob = %sha, grace_seconds = grace / 1000, "deleted a blob no catalog entry references");
                deleted += 1;
            }
            ops.push(DbOp::Delete { cf: CF_LOCAL, key: gc_key(sha) });
        }
    }
    if !ops.is_empty() {
        db.write(ops, false)?;
    }
    Ok(deleted)
}

fn gc_key(sha: &Sha256) -> Vec<u8> {
    [GC_PREFIX, sha.to_hex().as_bytes()].concat()
}
