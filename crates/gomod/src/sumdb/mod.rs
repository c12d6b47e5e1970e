//! The Go checksum database (x/mod `sumdb`): signed notes and verifier keys
//! (`note`), the transparent log's hashes and proofs (`tlog`), tiles and
//! their authentication against a signed tree head (`tile`), and the
//! records and tree heads the database serves (`record`). No I/O: callers
//! fetch tiles and hand their bytes in.

mod note;
mod record;
mod tile;
mod tlog;

#[cfg(test)]
mod tests;

pub use note::{open_note, Verifier};
pub use record::{parse_lookup, parse_tree, record_hashes, Lookup, RecordHashes, Tree, MAX_TREE_SIZE};
pub use tile::{Tile, TilePlan};
pub use tlog::{
    check_record, check_tree, node_hash, prove_record, prove_tree, record_hash, record_proof_indexes, split_stored_hash_index,
    stored_hash_index, tree_hash, tree_hash_indexes, tree_proof_indexes, Hash, HashReader, MapReader,
};

/// Tile height of every public Go checksum database (`tile/8/...`).
pub const TILE_HEIGHT: u32 = 8;
