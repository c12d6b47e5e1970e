//! Talking to a checksum database's log on the primary: one fetch per path
//! however many ask, tiles authenticated against a signed tree head before
//! they are recorded, tree heads checked for consistency with the one the
//! cluster recorded (a database that forks is refused), lookups verified
//! by their inclusion proof.

use std::sync::Arc;
use std::time::Instant;

use gomod::sumdb::{
    check_record, check_tree, open_note, parse_lookup, parse_tree, prove_record, prove_tree, record_hash, record_proof_indexes,
    tree_proof_indexes, MapReader, Tile, TilePlan, Tree, TILE_HEIGHT,
};
use gomod::{ModulePath, Version};
use store::{AuditRecord, CatalogOp, SumdbHead};

use super::SumdbConfig;
use crate::error::from_upstream;
use crate::fill::{negative_guard, outcome};
use crate::state::now_ms;
use crate::{ApiError, AppState};

/// Larger answers than this are not a checksum database's.
const MAX_BODY: u64 = 1 << 20;

/// A failed check: logged as a security event, counted, recorded in the
/// audit log (who: `flotilla`, action: `sumdb-mismatch` for a checksum
/// mismatch, else `sumdb-<kind>`), and a 502 that says what was refused.
/// `target` is what it concerns: `module@version`, or the database.
pub(crate) fn security_event(state: &AppState, db: &SumdbConfig, kind: &str, target: &str, message: String) -> ApiError {
    tracing::error!(security_event = true, sumdb = %db.name, kind, target, "{message}");
    state.metrics.sumdb_mismatch(&db.name, kind);
    let record = AuditRecord {
        who: "flotilla".into(),
        action: if kind == "checksum" { "sumdb-mismatch".into() } else { format!("sumdb-{kind}") },
        target: target.into(),
        at_ms: now_ms(),
        result: message.clone(),
        via: state.cfg.node_id,
        index: 0,
    };
    // Not awaited: the refusal does not wait for raft, and a record that
    // cannot be committed is logged (the log line above has it all).
    let cluster = state.cluster.clone();
    tokio::spawn(async move {
        if let Err(e) = cluster.audit(record).await {
            tracing::warn!(error = %e, "could not record a security event in the audit log");
        }
    });
    ApiError::bad_gateway(message)
}

/// GETs `path` from the database, once however many ask at the same time.
/// Its errors, and only they, read "checksum database <name>: …".
pub(crate) async fn fetch(state: &Arc<AppState>, db: &SumdbConfig, path: &str) -> Result<Vec<u8>, ApiError> {
    let key = format!("{} {path}", db.name);
    let (st, url, name) = (state.clone(), db.url_of(path), db.name.clone());
    state
        .sumdb_fetches
        .run(key, move || async move {
            let started = Instant::now();
            let result = st.upstream.fetch_url(&url, MAX_BODY).await;
            st.metrics.upstream("sumdb", outcome(&result), started.elapsed());
            result.map(|b| b.to_vec()).map_err(|e| from_upstream(&format!("checksum database {name}"), &e))
        })
        .await
}

fn tile_key(tile: &Tile) -> String {
    Tile { w: 1 << tile.h, ..*tile }.path()
}

/// The recorded tile data for `tile` (a prefix of a wider recorded tile).
pub(crate) fn recorded_tile(state: &AppState, db: &SumdbConfig, tile: &Tile) -> Result<Option<Vec<u8>>, ApiError> {
    let want = tile.w as usize * 32;
    Ok(state.store.catalog.sumdb(&db.name, &tile_key(tile))?.filter(|d| d.len() >= want).map(|mut d| {
        d.truncate(want);
        d
    }))
}

/// Stored hashes `indexes` of the signed tree `tree`, read from tiles (the
/// recorded ones, the rest from the database), which are authenticated
/// against `tree` and then recorded.
pub(crate) async fn read_hashes(state: &Arc<AppState>, db: &SumdbConfig, tree: Tree, indexes: &[i64]) -> Result<MapReader, ApiError> {
    let plan = TilePlan::new(tree, TILE_HEIGHT, indexes).map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    // One reader at a time, so a tile fetched by one is recorded before the next looks.
    let _serial = state.sumdb_tiles.lock().await;
    let mut data = Vec::with_capacity(plan.tiles().len());
    let mut fetched = Vec::new();
    for tile in plan.tiles() {
        match recorded_tile(state, db, tile)? {
            Some(bytes) => data.push(bytes),
            None => {
                fetched.push(data.len());
                data.push(fetch(state, db, &tile.path()).await?);
            }
        }
    }
    let hashes = plan.read(&data).map_err(|e| {
        security_event(
            state,
            db,
            "tile",
            &db.name,
            format!("checksum database {}'s {e}; refusing it (the database or this mirror's copy of it is inconsistent)", db.name),
        )
    })?;
    for i in fetched {
        let tile = &plan.tiles()[i];
        let op = CatalogOp::PutSumdbTile { db: db.name.clone(), tile: tile_key(tile), data: data[i].clone() };
        state.cluster.commit(op).await?;
    }
    Ok(MapReader(hashes))
}

/// Checks a signed tree head from the database (signature, consistency
/// with the recorded head) and records it when it is newer, or (`refresh`,
/// an answer to `latest`) as new: then its fetch time is recorded too.
pub(crate) async fn accept_head(state: &Arc<AppState>, db: &SumdbConfig, signed: &[u8], refresh: bool) -> Result<Tree, ApiError> {
    let text = open_note(signed, &db.key).map_err(|e| {
        security_event(
            state,
            db,
            "signature",
            &db.name,
            format!("checksum database {} sent a tree head that fails verification: {e}", db.name),
        )
    })?;
    let tree =
        parse_tree(text).map_err(|e| ApiError::bad_gateway(format!("checksum database {} sent an unreadable tree head: {e}", db.name)))?;
    let recorded = state.store.catalog.sumdb_head(&db.name)?;
    if let Some(old) = &recorded {
        let old_tree = open_note(old.note.as_bytes(), &db.key)
            .and_then(parse_tree)
            .map_err(|e| ApiError::internal(format!("recorded tree head of {} is unreadable: {e}", db.name)))?;
        check_consistent(state, db, old_tree, tree).await?;
    }
    if recorded.is_none_or(|old| old.size < tree.n || (refresh && old.size == tree.n)) {
        let note = String::from_utf8_lossy(signed).into_owned();
        let head = SumdbHead { note, size: tree.n, fetched_at_ms: now_ms() };
        state.cluster.commit(CatalogOp::PutSumdbHead { db: db.name.clone(), head }).await?;
    }
    Ok(tree)
}

async fn check_consistent(state: &Arc<AppState>, db: &SumdbConfig, recorded: Tree, got: Tree) -> Result<(), ApiError> {
    let (small, big) = if recorded.n <= got.n { (recorded, got) } else { (got, recorded) };
    let fork = || {
        security_event(
            state,
            db,
            "fork",
            &db.name,
            format!(
                "checksum database {} forked: its tree head ({} records, {}) is inconsistent with the verified one this mirror recorded ({} records, {}); refusing it",
                db.name, got.n, got.hash, recorded.n, recorded.hash
            ),
        )
    };
    if small.n == big.n {
        return if small.hash == big.hash { Ok(()) } else { Err(fork()) };
    }
    if small.n == 0 {
        return Ok(());
    }
    let indexes = tree_proof_indexes(big.n, small.n).map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    let reader = match read_hashes(state, db, big, &indexes).await {
        Ok(reader) => reader,
        Err(e) if e.status == axum::http::StatusCode::BAD_GATEWAY && e.message.contains("inconsistent") => return Err(fork()),
        Err(e) => return Err(e),
    };
    let proof = prove_tree(big.n, small.n, &reader).map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    check_tree(&proof, big.n, big.hash, small.n, small.hash).map_err(|_| fork())
}

/// The database's lookup answer for a version: recorded, or fetched,
/// verified (signed tree head, inclusion proof) and recorded.
pub(crate) async fn lookup(state: &Arc<AppState>, db: &SumdbConfig, module: &ModulePath, version: &Version) -> Result<Vec<u8>, ApiError> {
    let key = format!("lookup/{}@{}", module.escaped(), version.escaped());
    if let Some(body) = state.store.catalog.sumdb(&db.name, &key)? {
        return Ok(body);
    }
    let (st, db, m, v) = (state.clone(), db.clone(), module.clone(), version.clone());
    state
        .file_fills
        .run(format!("sumdb {} {key}", db.name), move || async move {
            if let Some(body) = st.store.catalog.sumdb(&db.name, &key)? {
                return Ok(body);
            }
            // A database's "not found" is remembered like upstream's (cache.negative_ttl).
            let body = negative_guard(&st, format!("sumdb {} {key}", db.name), fetch(&st, &db, &key)).await?;
            verify_lookup(&st, &db, &m, &v, &body).await?;
            st.cluster.commit(CatalogOp::PutSumdbLookup { db: db.name.clone(), key, body: body.clone() }).await?;
            Ok(body)
        })
        .await
}

async fn verify_lookup(
    state: &Arc<AppState>,
    db: &SumdbConfig,
    module: &ModulePath,
    version: &Version,
    body: &[u8],
) -> Result<(), ApiError> {
    let what = format!("checksum database {} lookup of {module}@{version}", db.name);
    let parsed = parse_lookup(body).map_err(|e| ApiError::bad_gateway(format!("{what}: {e}")))?;
    gomod::sumdb::record_hashes(parsed.text, module.as_str(), version.as_str())
        .map_err(|e| ApiError::bad_gateway(format!("{what}: {e}")))?;
    let tree = accept_head(state, db, parsed.signed_tree, false).await?;
    if parsed.id >= tree.n {
        return Err(security_event(
            state,
            db,
            "proof",
            &format!("{module}@{version}"),
            format!("{what}: record {} is outside the signed tree of {} records", parsed.id, tree.n),
        ));
    }
    let indexes = record_proof_indexes(tree.n, parsed.id).map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    let reader = read_hashes(state, db, tree, &indexes).await?;
    let proof = prove_record(tree.n, parsed.id, &reader).map_err(|e| ApiError::bad_gateway(e.to_string()))?;
    check_record(&proof, tree.n, tree.hash, parsed.id, record_hash(parsed.text.as_bytes())).map_err(|e| {
        security_event(state, db, "proof", &format!("{module}@{version}"), format!("{what}: the record is not in the signed tree: {e}"))
    })
}
