//! Checked against vectors that Go's own golang.org/x/mod/sumdb computed
//! (`testdata/vectors.json`, made by `tests/sumdb-vectors/generate.sh`):
//! 600 records `record <i>\n`, a key from a fixed seed, a signed tree head,
//! proofs and tiles of that tree.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct Proof {
    t: i64,
    n: i64,
    hashes: Vec<String>,
}

#[derive(Deserialize)]
struct TileVector {
    path: String,
    data: String,
}

#[derive(Deserialize)]
struct Vectors {
    verifier_key: String,
    signed_note: String,
    records: i64,
    tree_hashes: Vec<String>,
    stored_indexes: Vec<[i64; 3]>,
    record_proofs: Vec<Proof>,
    tree_proofs: Vec<Proof>,
    tiles: Vec<TileVector>,
    tile_paths: HashMap<String, i64>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("testdata/vectors.json")).unwrap()
}

fn h(text: &str) -> Hash {
    Hash::parse(text).unwrap()
}

/// Every stored hash of the vector tree, computed here as a log would.
fn stored(records: i64) -> MapReader {
    let mut all: Vec<Hash> = Vec::new();
    for i in 0..records {
        let mut hash = record_hash(format!("record {i}\n").as_bytes());
        all.push(hash);
        for level in 0..(i + 1).trailing_zeros() {
            let left = all[stored_hash_index(level, (i >> level) - 1) as usize];
            hash = node_hash(left, hash);
            all.push(hash);
        }
    }
    MapReader(all.into_iter().enumerate().map(|(i, h)| (i as i64, h)).collect())
}

#[test]
fn tree_hashes_match_go() {
    let v = vectors();
    let reader = stored(v.records);
    for (i, want) in v.tree_hashes.iter().enumerate() {
        assert_eq!(tree_hash(i as i64 + 1, &reader).unwrap(), h(want), "tree of {} records", i + 1);
    }
}

#[test]
fn stored_hash_indexes_match_go() {
    for [index, level, n] in vectors().stored_indexes {
        assert_eq!(split_stored_hash_index(index), (level as u32, n), "index {index}");
        assert_eq!(stored_hash_index(level as u32, n), index);
    }
}

#[test]
fn record_proofs_match_go_and_check() {
    let v = vectors();
    let reader = stored(v.records);
    for p in &v.record_proofs {
        let want: Vec<Hash> = p.hashes.iter().map(|s| h(s)).collect();
        assert_eq!(prove_record(p.t, p.n, &reader).unwrap(), want, "record proof {} in {}", p.n, p.t);
        let root = h(&v.tree_hashes[p.t as usize - 1]);
        let leaf = record_hash(format!("record {}\n", p.n).as_bytes());
        check_record(&want, p.t, root, p.n, leaf).unwrap();
        assert!(check_record(&want, p.t, root, p.n, record_hash(b"forged\n")).is_err());
    }
}

#[test]
fn tree_proofs_match_go_and_check() {
    let v = vectors();
    let reader = stored(v.records);
    for p in &v.tree_proofs {
        let want: Vec<Hash> = p.hashes.iter().map(|s| h(s)).collect();
        assert_eq!(prove_tree(p.t, p.n, &reader).unwrap(), want, "tree proof {} → {}", p.n, p.t);
        let (new, old) = (h(&v.tree_hashes[p.t as usize - 1]), h(&v.tree_hashes[p.n as usize - 1]));
        check_tree(&want, p.t, new, p.n, old).unwrap();
        if p.n < p.t {
            assert!(check_tree(&want, p.t, new, p.n, record_hash(b"fork")).is_err(), "a forked old tree fails");
        }
    }
}

#[test]
fn tile_paths_round_trip_like_go() {
    let v = vectors();
    for (path, n) in &v.tile_paths {
        let tile = Tile::parse_path(path).unwrap();
        assert_eq!((tile.n, tile.path()), (*n, path.clone()));
    }
    assert_eq!(Tile { h: 8, l: 0, n: 1_234_567, w: 256 }.path(), "tile/8/0/x001/x234/567");
    assert_eq!(Tile { h: 8, l: -1, n: 5, w: 3 }.path(), "tile/8/data/005.p/3");
    for bad in
        ["tile/8/0/1", "tile/8/0/000.p/256", "tile/8/0/000.p/0", "tile/0/0/000", "tile/8/0/x000/001", "tile/8/0/00a", "tiles/8/0/000"]
    {
        assert!(Tile::parse_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn tiles_match_go_and_authenticate() {
    let v = vectors();
    let reader = stored(v.records);
    let tree = Tree { n: v.records, hash: h(&v.tree_hashes[v.records as usize - 1]) };
    let mut by_path = HashMap::new();
    for t in &v.tiles {
        let tile = Tile::parse_path(&t.path).unwrap();
        let data = STANDARD.decode(&t.data).unwrap();
        let start = tile.n << tile.h;
        let ours: Vec<u8> = (0..i64::from(tile.w))
            .flat_map(|i| reader.read_hashes(&[stored_hash_index(tile.h * tile.l as u32, start + i)]).unwrap()[0].0)
            .collect();
        assert_eq!(ours, data, "tile {}", t.path);
        by_path.insert(t.path.clone(), data);
    }
    let indexes = [record_proof_indexes(tree.n, 300).unwrap(), tree_proof_indexes(tree.n, 257).unwrap()].concat();
    let plan = TilePlan::new(tree, TILE_HEIGHT, &indexes).unwrap();
    let mut data: Vec<Vec<u8>> = plan.tiles().iter().map(|t| by_path[&t.path()].clone()).collect();
    let got = MapReader(plan.read(&data).unwrap());
    assert_eq!(prove_record(tree.n, 300, &got).unwrap(), prove_record(tree.n, 300, &reader).unwrap());
    assert_eq!(prove_tree(tree.n, 257, &got).unwrap(), prove_tree(tree.n, 257, &reader).unwrap());
    data[0][5] ^= 1;
    assert!(plan.read(&data).is_err(), "a changed tile is refused");
}

#[test]
fn signed_notes_verify_like_go() {
    let v = vectors();
    let verifier = Verifier::parse(&v.verifier_key).unwrap();
    assert_eq!(verifier.name(), "vectors.example");
    let text = open_note(v.signed_note.as_bytes(), &verifier).unwrap();
    let tree = parse_tree(text).unwrap();
    assert_eq!((tree.n, tree.hash), (v.records, h(&v.tree_hashes[v.records as usize - 1])));
    assert_eq!(tree.format(), text);
    let forged = v.signed_note.replace("\n600\n", "\n601\n");
    assert!(open_note(forged.as_bytes(), &verifier).unwrap_err().to_string().contains("invalid signature"));
    let other = Verifier::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").unwrap();
    assert!(open_note(v.signed_note.as_bytes(), &other).unwrap_err().to_string().contains("no signature by sum.golang.org"));
}

#[test]
fn verifier_keys_are_checked() {
    Verifier::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").unwrap();
    let wrong_hash = Verifier::parse("sum.golang.org+033de0af+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").unwrap_err();
    assert!(wrong_hash.to_string().contains("does not match"), "{wrong_hash}");
    for bad in ["", "sum.golang.org", "sum.golang.org+033de0ae", "a b+033de0ae+AAAA", "x+0000000g+AAAA"] {
        assert!(Verifier::parse(bad).is_err(), "{bad:?}");
    }
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(text in ".{0,200}", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = Tile::parse_path(&text);
        let _ = Tile::parse_path(&format!("tile/8/{text}"));
        let _ = parse_tree(&text);
        let _ = parse_tree(&format!("go.sum database tree\n{text}"));
        let _ = parse_lookup(&bytes);
        let _ = Verifier::parse(&text);
        let verifier = Verifier::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").unwrap();
        let _ = open_note(&bytes, &verifier);
        let _ = open_note(format!("{text}\n\n\u{2014} sum.golang.org {text}\n").as_bytes(), &verifier);
    }

    #[test]
    fn tile_paths_round_trip(h in 1u32..=30, l in -1i32..64, n in 0i64..1_000_000_000_000, w in 1u32..=1 << 30) {
        let tile = Tile { h, l, n, w: w.min(1 << h) };
        proptest::prop_assert_eq!(Tile::parse_path(&tile.path()).unwrap(), tile);
    }

    #[test]
    fn plans_for_any_tree_read_their_tiles(size in 1i64..MAX_TREE_SIZE, at in 0i64..MAX_TREE_SIZE) {
        let tree = Tree { n: size, hash: Hash([1; 32]) };
        let record = at % size;
        let indexes = [record_proof_indexes(size, record).unwrap(), tree_proof_indexes(size, record + 1).unwrap()].concat();
        let plan = TilePlan::new(tree, TILE_HEIGHT, &indexes).unwrap();
        let data: Vec<Vec<u8>> = plan.tiles().iter().map(|t| vec![0; t.w as usize * 32]).collect();
        proptest::prop_assert!(plan.read(&data).is_err(), "zero tiles cannot hash to the tree");
    }
}

#[test]
fn lookups_and_records_parse() {
    let body =
        b"7\nexample.com/m v1.0.0 h1:zip=\nexample.com/m v1.0.0/go.mod h1:mod=\n\ngo.sum database tree\n8\nAAAA\n\n\xe2\x80\x94 x abc\n";
    let l = parse_lookup(body).unwrap();
    assert_eq!(l.id, 7);
    let hashes = record_hashes(l.text, "example.com/m", "v1.0.0").unwrap();
    assert_eq!((hashes.zip.as_str(), hashes.go_mod.as_str()), ("h1:zip=", "h1:mod="));
    assert!(l.signed_tree.starts_with(b"go.sum database tree\n8\n"));
    assert!(record_hashes(l.text, "example.com/other", "v1.0.0").is_err());
    assert!(record_hashes(l.text, "example.com/m", "v1.0.1").is_err());
    assert!(parse_lookup(b"x\nrec\n\nnote").is_err());
    assert!(parse_lookup(b"7\nno end").is_err());
}
