//! The transparent log's Merkle tree (x/mod `sumdb/tlog`): record and node
//! hashes, the numbering of stored hashes, tree hashes and the proofs that a
//! record is in a tree and that one tree extends another.
//!
//! Stored hashes are numbered in the order a log appends them: after
//! record `n` comes its hash (level 0) and then the hash of every complete
//! subtree that record closes. Proof computations only ever ask for stored
//! hashes, and which ones depends on the sizes alone, so a caller can list
//! them (`*_indexes`), fetch the tiles that hold them and then compute.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// A SHA-256 hash in the tree.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl Hash {
    /// Parses the base64 form used in tree heads.
    pub fn parse(text: &str) -> Result<Hash> {
        let bytes = STANDARD.decode(text).map_err(|_| Error::Sumdb(format!("malformed hash {text:?}")))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| Error::Sumdb(format!("hash {text:?} is not 32 bytes")))?;
        Ok(Hash(arr))
    }
}

/// The hash of a record's content: sha256(0x00 ‖ data).
pub fn record_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash(h.finalize().into())
}

/// The hash of an interior node: sha256(0x01 ‖ left ‖ right).
pub fn node_hash(left: Hash, right: Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// Where the hash of the `n`th subtree at `level` sits in the stored order.
pub fn stored_hash_index(level: u32, n: i64) -> i64 {
    let mut n = n;
    for _ in 0..level {
        n = 2 * n + 1;
    }
    let mut i = 0;
    while n > 0 {
        i += n;
        n >>= 1;
    }
    i + i64::from(level)
}

/// The inverse of [`stored_hash_index`]: `(level, n)`.
pub fn split_stored_hash_index(index: i64) -> (u32, i64) {
    let mut n = index / 2;
    let mut index_n = stored_hash_index(0, n);
    loop {
        let x = index_n + 1 + i64::from((n + 1).trailing_zeros());
        if x > index {
            break;
        }
        n += 1;
        index_n = x;
    }
    let level = (index - index_n) as u32;
    (level, n >> level)
}

/// `(k, log2 k)` for the largest power of two `k` smaller than `n` (n ≥ 2).
fn maxpow2(n: i64) -> (i64, u32) {
    let l = 63 - (n - 1).leading_zeros();
    (1 << l, l)
}

/// Supplies stored hashes by index.
pub trait HashReader {
    fn read_hashes(&self, indexes: &[i64]) -> Result<Vec<Hash>>;
}

/// A [`HashReader`] over hashes already at hand (from tiles).
#[derive(Debug, Default)]
pub struct MapReader(pub HashMap<i64, Hash>);

impl HashReader for MapReader {
    fn read_hashes(&self, indexes: &[i64]) -> Result<Vec<Hash>> {
        indexes.iter().map(|i| self.0.get(i).copied().ok_or_else(|| Error::Sumdb(format!("stored hash {i} was not fetched")))).collect()
    }
}

fn read(r: &dyn HashReader, indexes: &[i64]) -> Result<Vec<Hash>> {
    let hashes = r.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(Error::Sumdb(format!("asked for {} hashes, got {}", indexes.len(), hashes.len())));
    }
    Ok(hashes)
}

fn sub_tree_index(mut lo: i64, hi: i64, need: &mut Vec<i64>) {
    while lo < hi {
        let (k, level) = maxpow2(hi - lo + 1);
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

fn sub_tree_hash(mut lo: i64, hi: i64, hashes: &[Hash]) -> (Hash, &[Hash]) {
    let mut count = 0;
    while lo < hi {
        let (k, _) = maxpow2(hi - lo + 1);
        count += 1;
        lo += k;
    }
    let mut h = hashes[count - 1];
    for i in (0..count - 1).rev() {
        h = node_hash(hashes[i], h);
    }
    (h, &hashes[count..])
}

/// The stored hashes [`tree_hash`] reads for a tree of `n` records.
pub fn tree_hash_indexes(n: i64) -> Vec<i64> {
    let mut need = Vec::new();
    sub_tree_index(0, n, &mut need);
    need
}

/// The root hash of the tree of the first `n` records.
pub fn tree_hash(n: i64, r: &dyn HashReader) -> Result<Hash> {
    if n <= 0 {
        return Ok(Hash::default());
    }
    let hashes = read(r, &tree_hash_indexes(n))?;
    Ok(sub_tree_hash(0, n, &hashes).0)
}

fn leaf_proof_index(lo: i64, hi: i64, n: i64, need: &mut Vec<i64>) {
    if lo + 1 == hi {
        return;
    }
    let (k, _) = maxpow2(hi - lo);
    if n < lo + k {
        leaf_proof_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need);
    } else {
        sub_tree_index(lo, lo + k, need);
        leaf_proof_index(lo + k, hi, n, need);
    }
}

fn leaf_proof(lo: i64, hi: i64, n: i64, hashes: &[Hash]) -> (Vec<Hash>, &[Hash]) {
    if lo + 1 == hi {
        return (Vec::new(), hashes);
    }
    let (k, _) = maxpow2(hi - lo);
    let (mut p, th, rest);
    if n < lo + k {
        let (p1, r1) = leaf_proof(lo, lo + k, n, hashes);
        let (t1, r2) = sub_tree_hash(lo + k, hi, r1);
        (p, th, rest) = (p1, t1, r2);
    } else {
        let (t1, r1) = sub_tree_hash(lo, lo + k, hashes);
        let (p1, r2) = leaf_proof(lo + k, hi, n, r1);
        (p, th, rest) = (p1, t1, r2);
    }
    p.push(th);
    (p, rest)
}

fn check_sizes(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Sumdb(format!("invalid sizes for {what}")))
    }
}

/// The stored hashes [`prove_record`] reads.
pub fn record_proof_indexes(t: i64, n: i64) -> Result<Vec<i64>> {
    check_sizes(0 <= n && n < t, "a record proof")?;
    let mut need = Vec::new();
    leaf_proof_index(0, t, n, &mut need);
    Ok(need)
}

/// The proof that record `n` is in the tree of size `t`.
pub fn prove_record(t: i64, n: i64, r: &dyn HashReader) -> Result<Vec<Hash>> {
    let indexes = record_proof_indexes(t, n)?;
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read(r, &indexes)?;
    Ok(leaf_proof(0, t, n, &hashes).0)
}

fn proof_failed() -> Error {
    Error::Sumdb("invalid transparency proof".into())
}

fn run_record_proof(p: &[Hash], lo: i64, hi: i64, n: i64, leaf: Hash) -> Result<Hash> {
    if lo + 1 == hi {
        return if p.is_empty() { Ok(leaf) } else { Err(proof_failed()) };
    }
    let Some((last, p)) = p.split_last() else { return Err(proof_failed()) };
    let (k, _) = maxpow2(hi - lo);
    if n < lo + k {
        Ok(node_hash(run_record_proof(p, lo, lo + k, n, leaf)?, *last))
    } else {
        Ok(node_hash(*last, run_record_proof(p, lo + k, hi, n, leaf)?))
    }
}

/// Checks that `proof` shows the record with hash `h` at index `n` in the
/// tree of size `t` with root `th`.
pub fn check_record(proof: &[Hash], t: i64, th: Hash, n: i64, h: Hash) -> Result<()> {
    check_sizes(0 <= n && n < t, "a record proof")?;
    if run_record_proof(proof, 0, t, n, h)? == th {
        Ok(())
    } else {
        Err(proof_failed())
    }
}

fn tree_proof_index(lo: i64, hi: i64, n: i64, need: &mut Vec<i64>) {
    if n == hi {
        if lo != 0 {
            sub_tree_index(lo, hi, need);
        }
        return;
    }
    let (k, _) = maxpow2(hi - lo);
    if n <= lo + k {
        tree_proof_index(lo, lo + k, n, need);
        sub_tree_index(lo + k, hi, need);
    } else {
        sub_tree_index(lo, lo + k, need);
        tree_proof_index(lo + k, hi, n, need);
    }
}

fn tree_proof(lo: i64, hi: i64, n: i64, hashes: &[Hash]) -> (Vec<Hash>, &[Hash]) {
    if n == hi {
        if lo == 0 {
            return (Vec::new(), hashes);
        }
        let (th, rest) = sub_tree_hash(lo, hi, hashes);
        return (vec![th], rest);
    }
    let (k, _) = maxpow2(hi - lo);
    let (mut p, th, rest);
    if n <= lo + k {
        let (p1, r1) = tree_proof(lo, lo + k, n, hashes);
        let (t1, r2) = sub_tree_hash(lo + k, hi, r1);
        (p, th, rest) = (p1, t1, r2);
    } else {
        let (t1, r1) = sub_tree_hash(lo, lo + k, hashes);
        let (p1, r2) = tree_proof(lo + k, hi, n, r1);
        (p, th, rest) = (p1, t1, r2);
    }
    p.push(th);
    (p, rest)
}

/// The stored hashes [`prove_tree`] reads.
pub fn tree_proof_indexes(t: i64, n: i64) -> Result<Vec<i64>> {
    check_sizes(1 <= n && n <= t, "a tree proof")?;
    let mut need = Vec::new();
    tree_proof_index(0, t, n, &mut need);
    Ok(need)
}

/// The proof that the tree of size `t` extends the tree of size `n`.
pub fn prove_tree(t: i64, n: i64, r: &dyn HashReader) -> Result<Vec<Hash>> {
    let indexes = tree_proof_indexes(t, n)?;
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = read(r, &indexes)?;
    Ok(tree_proof(0, t, n, &hashes).0)
}

fn run_tree_proof(p: &[Hash], lo: i64, hi: i64, n: i64, old: Hash) -> Result<(Hash, Hash)> {
    if n == hi {
        if lo == 0 {
            return if p.is_empty() { Ok((old, old)) } else { Err(proof_failed()) };
        }
        return match p {
            [only] => Ok((*only, *only)),
            _ => Err(proof_failed()),
        };
    }
    let Some((last, p)) = p.split_last() else { return Err(proof_failed()) };
    let (k, _) = maxpow2(hi - lo);
    if n <= lo + k {
        let (oh, th) = run_tree_proof(p, lo, lo + k, n, old)?;
        Ok((oh, node_hash(th, *last)))
    } else {
        let (oh, th) = run_tree_proof(p, lo + k, hi, n, old)?;
        Ok((node_hash(*last, oh), node_hash(*last, th)))
    }
}

/// Checks that `proof` shows the tree of size `t` with root `th` extends
/// the tree of size `n` with root `h`.
pub fn check_tree(proof: &[Hash], t: i64, th: Hash, n: i64, h: Hash) -> Result<()> {
    check_sizes(1 <= n && n <= t, "a tree proof")?;
    let (h2, th2) = run_tree_proof(proof, 0, t, n, h)?;
    if h2 == h && th2 == th {
        Ok(())
    } else {
        Err(proof_failed())
    }
}
