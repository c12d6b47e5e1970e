//! Tiles (x/mod `sumdb/tlog` tiles): the database serves its stored hashes
//! in tiles of `2^H` hashes of one level band, at `tile/H/L/NNN[.p/W]`
//! (`NNN` in groups of three digits, `x123/` for the higher groups; `.p/W`
//! for a partial tile of `W` hashes; `L = data` for the records).
//!
//! [`TilePlan`] reads stored hashes from tiles the way the go command does:
//! the tiles holding the tree's subtree roots must hash to the signed tree
//! head, and every other tile must hash to its entry in its parent tile, so
//! tiles from an untrusted source are authenticated before use.

use std::collections::HashMap;

use super::tlog::{node_hash, split_stored_hash_index, stored_hash_index, tree_hash_indexes, Hash};
use super::Tree;
use crate::{Error, Result};

const PATH_BASE: i64 = 1000;
const HASH_SIZE: usize = 32;

/// One tile: height `h`, level `l` (−1 for record data), number `n`
/// within the level, width `w` (`2^h` when full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub h: u32,
    pub l: i32,
    pub n: i64,
    pub w: u32,
}

fn bad_path(path: &str) -> Error {
    Error::Sumdb(format!("malformed tile path {path:?}"))
}

impl Tile {
    pub fn is_full(&self) -> bool {
        self.w == 1 << self.h
    }

    pub fn is_data(&self) -> bool {
        self.l < 0
    }

    /// `tile/H/L/NNN[.p/W]`.
    pub fn path(&self) -> String {
        let mut n = self.n;
        let mut text = format!("{:03}", n % PATH_BASE);
        while n >= PATH_BASE {
            n /= PATH_BASE;
            text = format!("x{:03}/{text}", n % PATH_BASE);
        }
        let partial = if self.is_full() { String::new() } else { format!(".p/{}", self.w) };
        let level = if self.is_data() { "data".to_string() } else { self.l.to_string() };
        format!("tile/{}/{level}/{text}{partial}", self.h)
    }

    /// Parses a tile path, accepting only the canonical spelling.
    pub fn parse_path(path: &str) -> Result<Tile> {
        let fields: Vec<&str> = path.split('/').collect();
        if fields.len() < 4 || fields[0] != "tile" || fields.len() > 12 {
            return Err(bad_path(path));
        }
        let h: u32 = fields[1].parse().map_err(|_| bad_path(path))?;
        if !(1..=30).contains(&h) {
            return Err(bad_path(path));
        }
        let l: i32 = match fields[2] {
            "data" => -1,
            level => level.parse().ok().filter(|l| (0..64).contains(l)).ok_or_else(|| bad_path(path))?,
        };
        let mut w = 1u32 << h;
        let mut numbers: Vec<&str> = fields[3..].to_vec();
        if let Some(dot_p) = fields[fields.len() - 2].strip_suffix(".p") {
            let ww: u32 = fields[fields.len() - 1].parse().map_err(|_| bad_path(path))?;
            if ww == 0 || ww >= w || fields.len() < 5 {
                return Err(bad_path(path));
            }
            w = ww;
            numbers.pop();
            if let Some(last) = numbers.last_mut() {
                *last = dot_p;
            }
        }
        let mut n: i64 = 0;
        for part in &numbers {
            let digits = part.strip_prefix('x').unwrap_or(part);
            let value: i64 = digits.parse().map_err(|_| bad_path(path))?;
            if !(0..PATH_BASE).contains(&value) {
                return Err(bad_path(path));
            }
            n = n.checked_mul(PATH_BASE).and_then(|n| n.checked_add(value)).ok_or_else(|| bad_path(path))?;
        }
        let tile = Tile { h, l, n, w };
        if tile.path() != path {
            return Err(bad_path(path));
        }
        Ok(tile)
    }

    /// The smallest tile of height `h` holding stored hash `index`, and the
    /// byte range of that hash's subtree inside it.
    pub fn for_index(h: u32, index: i64) -> (Tile, usize, usize) {
        let (mut level, mut n) = split_stored_hash_index(index);
        let l = level / h;
        level -= l * h;
        let tn = (n << level) >> h;
        n -= (tn << h) >> level;
        let w = ((n + 1) << level) as u32;
        let start = (n << level) as usize * HASH_SIZE;
        let end = ((n + 1) << level) as usize * HASH_SIZE;
        (Tile { h, l: l as i32, n: tn, w }, start, end)
    }

    /// The `k`th ancestor of this tile in a tree of `size` records, as wide
    /// as that tree allows; `None` when the tree has no such tile.
    pub fn parent(self, k: u32, size: i64) -> Option<Tile> {
        let mut t = self;
        t.l += k as i32;
        t.n >>= k * t.h;
        t.w = 1 << t.h;
        let max = size >> (t.l as u32 * t.h);
        if (t.n << t.h) + i64::from(t.w) >= max {
            if t.n << t.h >= max {
                return None;
            }
            t.w = (max - (t.n << t.h)) as u32;
        }
        Some(t)
    }

    /// The stored hash `index` read from this tile's `data`.
    pub fn hash_at(&self, data: &[u8], index: i64) -> Result<Hash> {
        if data.len() < self.w as usize * HASH_SIZE {
            return Err(Error::Sumdb(format!("tile {} has {} bytes, want {}", self.path(), data.len(), self.w as usize * HASH_SIZE)));
        }
        let (t1, start, end) = Tile::for_index(self.h, index);
        if self.l != t1.l || self.n != t1.n || self.w < t1.w {
            return Err(Error::Sumdb(format!("stored hash {index} is in {} not {}", t1.path(), self.path())));
        }
        Ok(tile_hash(&data[start..end]))
    }
}

/// The hash of the subtree whose bottom-level hashes are `data`.
pub fn tile_hash(data: &[u8]) -> Hash {
    if data.len() <= HASH_SIZE {
        let mut h = Hash::default();
        h.0[..data.len()].copy_from_slice(data);
        return h;
    }
    let half = data.len() / 2;
    node_hash(tile_hash(&data[..half]), tile_hash(&data[half..]))
}

/// Which tiles to fetch to read some stored hashes of a signed tree, and
/// how to authenticate them once fetched.
#[derive(Debug)]
pub struct TilePlan {
    tree: Tree,
    tiles: Vec<Tile>,
    order: HashMap<Tile, usize>,
    roots: Vec<i64>,
    index_tile: Vec<(i64, usize)>,
}

impl TilePlan {
    /// Plans reading `indexes` (stored hashes of `tree`) from tiles of height `h`.
    pub fn new(tree: Tree, h: u32, indexes: &[i64]) -> Result<TilePlan> {
        let mut plan =
            TilePlan { tree, tiles: Vec::new(), order: HashMap::new(), roots: tree_hash_indexes(tree.n), index_tile: Vec::new() };
        for &x in &plan.roots.clone() {
            let tile = Tile::for_index(h, x).0.parent(0, tree.n).ok_or_else(|| Error::Sumdb("tile math".into()))?;
            plan.add(tile);
        }
        let limit = stored_hash_index(0, tree.n);
        for &x in indexes {
            if x >= limit {
                return Err(Error::Sumdb(format!("stored hash {x} is not in a tree of {} records", tree.n)));
            }
            let tile = Tile::for_index(h, x).0;
            let mut k = 0;
            while tile.parent(k, tree.n).is_some_and(|p| !plan.order.contains_key(&p)) {
                k += 1;
            }
            for kk in (0..k).rev() {
                let p = tile.parent(kk, tree.n).ok_or_else(|| Error::Sumdb("tile math".into()))?;
                if !p.is_full() {
                    return Err(Error::Sumdb(format!("tile math: {} for stored hash {x} is partial", p.path())));
                }
                plan.add(p);
            }
            let at = tile.parent(0, tree.n).and_then(|p| plan.order.get(&p).copied()).ok_or_else(|| Error::Sumdb("tile math".into()))?;
            plan.index_tile.push((x, at));
        }
        Ok(plan)
    }

    fn add(&mut self, tile: Tile) {
        if !self.order.contains_key(&tile) {
            self.order.insert(tile, self.tiles.len());
            self.tiles.push(tile);
        }
    }

    /// The tiles to fetch, in the order [`TilePlan::read`] wants their data.
    pub fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// Authenticates the fetched tile `data` (one per tile of
    /// [`TilePlan::tiles`]) against the tree head and returns the planned
    /// hashes by index.
    pub fn read(&self, data: &[Vec<u8>]) -> Result<HashMap<i64, Hash>> {
        if data.len() != self.tiles.len() {
            return Err(Error::Sumdb(format!("got {} tiles, want {}", data.len(), self.tiles.len())));
        }
        for (tile, bytes) in self.tiles.iter().zip(data) {
            if bytes.len() != tile.w as usize * HASH_SIZE {
                return Err(Error::Sumdb(format!("tile {} has {} bytes, want {}", tile.path(), bytes.len(), tile.w as usize * HASH_SIZE)));
            }
        }
        let inconsistent = |tile: &Tile| Error::Sumdb(format!("tile {} is inconsistent with the signed tree head", tile.path()));
        let at = |x: i64| -> Result<Hash> {
            let tile = Tile::for_index(self.tiles[0].h, x).0.parent(0, self.tree.n).ok_or_else(|| Error::Sumdb("tile math".into()))?;
            let i = self.order[&tile];
            self.tiles[i].hash_at(&data[i], x)
        };
        if self.tree.n > 0 {
            let mut root = at(self.roots[self.roots.len() - 1])?;
            for &x in self.roots[..self.roots.len() - 1].iter().rev() {
                root = node_hash(at(x)?, root);
            }
            if root != self.tree.hash {
                return Err(inconsistent(&self.tiles[0]));
            }
        }
        let rooted = self.roots.iter().filter_map(|&x| Tile::for_index(self.tiles[0].h, x).0.parent(0, self.tree.n)).collect::<Vec<_>>();
        for (i, tile) in self.tiles.iter().enumerate() {
            if rooted.contains(tile) {
                continue;
            }
            let parent = tile.parent(1, self.tree.n).ok_or_else(|| Error::Sumdb("tile math: no parent".into()))?;
            let j = *self.order.get(&parent).ok_or_else(|| Error::Sumdb("tile math: lost parent".into()))?;
            let expected = parent.hash_at(&data[j], stored_hash_index(parent.l as u32 * parent.h, tile.n))?;
            if expected != tile_hash(&data[i]) {
                return Err(inconsistent(tile));
            }
        }
        let mut out = HashMap::new();
        for &(x, i) in &self.index_tile {
            out.insert(x, self.tiles[i].hash_at(&data[i], x)?);
        }
        Ok(out)
    }
}
