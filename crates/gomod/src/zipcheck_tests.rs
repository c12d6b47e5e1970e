//! Tests of the zip checks and the h1 hash over real zips built here.

use super::*;
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;

enum E<'a> {
    File(&'a str, &'a [u8]),
    Stored(&'a str, &'a [u8]),
    Dir(&'a str),
}

fn build(entries: &[E<'_>]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let deflate = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let store = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for e in entries {
        match e {
            E::File(name, data) | E::Stored(name, data) => {
                let opts = if matches!(e, E::File(..)) { deflate } else { store };
                w.start_file(*name, opts).unwrap();
                w.write_all(data).unwrap();
            }
            E::Dir(name) => w.add_directory(*name, store).unwrap(),
        }
    }
    w.finish().unwrap().into_inner()
}

fn check(bytes: &[u8], module: &str, version: &str) -> Result<ZipSummary> {
    check_with(bytes, module, version, &ZipLimits::default())
}

fn check_with(bytes: &[u8], module: &str, version: &str, limits: &ZipLimits) -> Result<ZipSummary> {
    let m = ModulePath::new(module).unwrap();
    let v = Version::new(version).unwrap();
    check_zip(Cursor::new(bytes), &m, &v, limits)
}

fn err(bytes: &[u8], module: &str, version: &str) -> String {
    check(bytes, module, version).expect_err("zip should be rejected").to_string()
}

/// Replaces every occurrence of `from` (same length as `to`) in the zip bytes.
fn patch(mut bytes: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (f, t) = (from.as_bytes(), to.as_bytes());
    let mut i = 0;
    let mut hits = 0;
    while i + f.len() <= bytes.len() {
        if &bytes[i..i + f.len()] == f {
            bytes[i..i + f.len()].copy_from_slice(t);
            hits += 1;
        }
        i += 1;
    }
    assert!(hits > 0, "{from} not found");
    bytes
}

/// Overwrites a field of the `n`th central directory header.
fn patch_central(mut bytes: Vec<u8>, n: usize, offset: usize, value: &[u8]) -> Vec<u8> {
    let starts: Vec<usize> = (0..bytes.len().saturating_sub(4)).filter(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02]).collect();
    let at = starts[n] + offset;
    bytes[at..at + value.len()].copy_from_slice(value);
    bytes
}

const HELLO: &str = "example.com/hello@v1.0.0/";

fn hello_zip() -> Vec<u8> {
    build(&[
        E::File("example.com/hello@v1.0.0/go.mod", b"module example.com/hello\n"),
        E::File("example.com/hello@v1.0.0/hello.go", b"package hello\n"),
    ])
}

#[test]
fn worked_example_h1() {
    let s = check(&hello_zip(), "example.com/hello", "v1.0.0").unwrap();
    assert_eq!(s.h1, "h1:v/u/g2S1hZaWZImyAVXAGG42N1pWX/UTgAYidytBT84=");
    assert_eq!(s.files, 2);
    assert_eq!(s.uncompressed, 39);
    let go_mod = s.go_mod.unwrap();
    assert_eq!(go_mod, b"module example.com/hello\n");
    assert_eq!(crate::h1_go_mod(&go_mod), "h1:fpu2YBs8Cn+uPELS7pdczZmF9hlK1PibTkwahffYMfo=");
}

#[test]
fn stored_and_reordered_entries_hash_the_same() {
    let z = build(&[
        E::Stored("example.com/hello@v1.0.0/hello.go", b"package hello\n"),
        E::Stored("example.com/hello@v1.0.0/go.mod", b"module example.com/hello\n"),
    ]);
    let s = check(&z, "example.com/hello", "v1.0.0").unwrap();
    assert_eq!(s.h1, "h1:v/u/g2S1hZaWZImyAVXAGG42N1pWX/UTgAYidytBT84=");
}

#[test]
fn directory_entries_count() {
    let z = build(&[
        E::File("example.com/dirs@v1.0.0/go.mod", b"module example.com/dirs\n"),
        E::Dir("example.com/dirs@v1.0.0/sub/"),
        E::File("example.com/dirs@v1.0.0/sub/b.go", b"package sub\n"),
    ]);
    let s = check(&z, "example.com/dirs", "v1.0.0").unwrap();
    assert_eq!(s.h1, "h1:UyXC2rYaOefNirpgLWWTsO2eCdYcuoqrlezy5lxdYSk=");
    assert_eq!(s.files, 2);
    let without = build(&[
        E::File("example.com/dirs@v1.0.0/go.mod", b"module example.com/dirs\n"),
        E::File("example.com/dirs@v1.0.0/sub/b.go", b"package sub\n"),
    ]);
    assert_ne!(check(&without, "example.com/dirs", "v1.0.0").unwrap().h1, s.h1);
}

#[test]
fn root_dir_entry_and_no_go_mod() {
    let z = build(&[E::Dir(HELLO), E::File("example.com/hello@v1.0.0/a.go", b"package a\n")]);
    let s = check(&z, "example.com/hello", "v1.0.0").unwrap();
    assert_eq!(s.go_mod, None);
    assert_eq!(s.files, 1);
    let empty = build(&[]);
    let s = check(&empty, "example.com/hello", "v1.0.0").unwrap();
    assert_eq!(s.h1, crate::h1_from_file_hashes(Vec::new()));
}

#[test]
fn raw_module_path_and_incompatible() {
    let z = build(&[E::File("example.com/Upper/mod@v2.0.0+incompatible/x.go", b"package x\n")]);
    assert!(check(&z, "example.com/Upper/mod", "v2.0.0+incompatible").is_ok());
    let e = err(&z, "example.com/upper/mod", "v2.0.0+incompatible");
    assert!(e.contains("does not start with \"example.com/upper/mod@v2.0.0+incompatible/\""), "{e}");
    let e = err(&z, "example.com/Upper/mod", "v2.0.0");
    assert!(e.contains("should be v0 or v1"), "{e}");
}

#[test]
fn rejects_bad_names() {
    let cases: &[(&str, &str)] = &[
        ("example.com/other@v1.0.0/a.go", "does not start with"),
        ("example.com/hello@v1.0.1/a.go", "does not start with"),
        ("example.com/hello@v1.0.0/a/../b.go", "not clean"),
        ("example.com/hello@v1.0.0/./b.go", "not clean"),
        ("example.com/hello@v1.0.0//b.go", "not clean"),
        ("example.com/hello@v1.0.0/a:b.go", "invalid char ':'"),
        ("example.com/hello@v1.0.0/a*b.go", "invalid char '*'"),
        ("example.com/hello@v1.0.0/a\\b.go", "invalid char '\\\\'"),
        ("example.com/hello@v1.0.0/con.go", "Windows"),
        ("example.com/hello@v1.0.0/b.", "trailing dot"),
        ("example.com/hello@v1.0.0/sub/go.mod", "not in module root"),
        ("example.com/hello@v1.0.0/GO.MOD", "must be lowercase"),
    ];
    for &(name, want) in cases {
        let z = build(&[E::File(name, b"x")]);
        let e = err(&z, "example.com/hello", "v1.0.0");
        assert!(e.contains(want), "{name}: want {want:?} in {e:?}");
        assert!(e.starts_with("invalid module zip: "), "{e}");
        assert!(!e.contains('\n'));
    }
}

#[test]
fn rejects_newline_and_non_utf8_names() {
    let z = patch(build(&[E::File("example.com/hello@v1.0.0/aXb", b"x")]), "X", "\n");
    assert!(err(&z, "example.com/hello", "v1.0.0").contains("newline"));
    let z = patch(build(&[E::File("example.com/hello@v1.0.0/aXb", b"x")]), "X", "\u{7f}");
    assert!(err(&z, "example.com/hello", "v1.0.0").contains("invalid char"));
    let mut z = build(&[E::File("example.com/hello@v1.0.0/aXb", b"x")]);
    for b in z.iter_mut().filter(|b| **b == b'X') {
        *b = 0xff;
    }
    assert!(err(&z, "example.com/hello", "v1.0.0").contains("not valid UTF-8"));
}

#[test]
fn rejects_duplicates_and_collisions() {
    let dup =
        patch(build(&[E::File("example.com/hello@v1.0.0/a.go", b"1"), E::File("example.com/hello@v1.0.0/b.go", b"2")]), "b.go", "a.go");
    assert!(err(&dup, "example.com/hello", "v1.0.0").contains("multiple entries for file \"a.go\""));
    let fold = build(&[E::File("example.com/hello@v1.0.0/A.go", b"1"), E::File("example.com/hello@v1.0.0/a.go", b"2")]);
    assert!(err(&fold, "example.com/hello", "v1.0.0").contains("case-insensitive file name collision"));
    let kelvin = build(&[E::File("example.com/hello@v1.0.0/k.go", b"1"), E::File("example.com/hello@v1.0.0/\u{212a}.go", b"2")]);
    assert!(err(&kelvin, "example.com/hello", "v1.0.0").contains("case-insensitive"));
    let both = build(&[E::File("example.com/hello@v1.0.0/a", b"1"), E::File("example.com/hello@v1.0.0/a/b", b"2")]);
    assert!(err(&both, "example.com/hello", "v1.0.0").contains("both a file and a directory"));
    let both = build(&[E::File("example.com/hello@v1.0.0/a/b", b"2"), E::File("example.com/hello@v1.0.0/a", b"1")]);
    assert!(err(&both, "example.com/hello", "v1.0.0").contains("both a file and a directory"));
    let dir_case = build(&[E::File("example.com/hello@v1.0.0/Sub/a", b"1"), E::File("example.com/hello@v1.0.0/sub/b", b"2")]);
    assert!(err(&dir_case, "example.com/hello", "v1.0.0").contains("collision"));
}

#[test]
fn duplicate_directory_entries_are_allowed_and_hashed() {
    let z = patch(
        build(&[
            E::Dir("example.com/hello@v1.0.0/sub/"),
            E::Dir("example.com/hello@v1.0.0/sux/"),
            E::File("example.com/hello@v1.0.0/sub/a", b"1"),
        ]),
        "sux/",
        "sub/",
    );
    let s = check(&z, "example.com/hello", "v1.0.0").unwrap();
    let empty: [u8; 32] = Sha256::digest(b"").into();
    let want = h1_from_file_hashes([
        ("example.com/hello@v1.0.0/sub/".to_string(), empty),
        ("example.com/hello@v1.0.0/sub/".to_string(), empty),
        ("example.com/hello@v1.0.0/sub/a".to_string(), Sha256::digest(b"1").into()),
    ]);
    assert_eq!(s.h1, want);
}

#[test]
fn rejects_size_lies_and_methods() {
    let z = build(&[E::Stored("example.com/hello@v1.0.0/a.go", b"package a\n")]);
    // central directory: method at 10, uncompressed size at 24
    let smaller = patch_central(z.clone(), 0, 24, &5u32.to_le_bytes());
    assert!(err(&smaller, "example.com/hello", "v1.0.0").contains("more than 5 bytes"));
    let deflated = build(&[E::File("example.com/hello@v1.0.0/a.go", &[b'a'; 10_000])]);
    let bomb = patch_central(deflated, 0, 24, &100u32.to_le_bytes());
    assert!(err(&bomb, "example.com/hello", "v1.0.0").contains("more than 100 bytes"));
    let larger = patch_central(z.clone(), 0, 24, &50u32.to_le_bytes());
    assert!(err(&larger, "example.com/hello", "v1.0.0").contains("only 50 bytes"));
    let bzip = patch_central(z.clone(), 0, 10, &12u16.to_le_bytes());
    assert!(err(&bzip, "example.com/hello", "v1.0.0").contains("only Store and Deflate"));
    let crc = patch_central(z, 0, 16, &0u32.to_le_bytes());
    assert!(err(&crc, "example.com/hello", "v1.0.0").contains("a.go"));
    let dir = patch_central(build(&[E::Dir("example.com/hello@v1.0.0/sub/")]), 0, 24, &3u32.to_le_bytes());
    assert!(err(&dir, "example.com/hello", "v1.0.0").contains("directory entry"));
}

#[test]
fn enforces_limits() {
    let z = build(&[
        E::File("example.com/hello@v1.0.0/go.mod", b"module example.com/hello\n"),
        E::File("example.com/hello@v1.0.0/LICENSE", &[b'x'; 100]),
        E::File("example.com/hello@v1.0.0/big.go", &[b'x'; 1000]),
    ]);
    let ok = check(&z, "example.com/hello", "v1.0.0").unwrap();
    assert_eq!(ok.uncompressed, 25 + 100 + 1000);
    let limits = ZipLimits { max_zip_size: 10, ..ZipLimits::default() };
    let e = check_with(&z, "example.com/hello", "v1.0.0", &limits).unwrap_err().to_string();
    assert!(e.contains("the limit is 10"), "{e}");
    let limits = ZipLimits { max_uncompressed: 1000, ..ZipLimits::default() };
    let e = check_with(&z, "example.com/hello", "v1.0.0", &limits).unwrap_err().to_string();
    assert!(e.contains("more than 1000 bytes"), "{e}");
    let limits = ZipLimits { max_go_mod: 24, ..ZipLimits::default() };
    let e = check_with(&z, "example.com/hello", "v1.0.0", &limits).unwrap_err().to_string();
    assert!(e.contains("go.mod is 25 bytes"), "{e}");
    let limits = ZipLimits { max_license: 99, ..ZipLimits::default() };
    let e = check_with(&z, "example.com/hello", "v1.0.0", &limits).unwrap_err().to_string();
    assert!(e.contains("LICENSE is 100 bytes"), "{e}");
    assert_eq!(ZipLimits::default().max_zip_size, 524_288_000);
    assert_eq!(ZipLimits::default().max_go_mod, 16_777_216);
}

#[test]
fn rejects_garbage() {
    for bytes in [&b""[..], b"not a zip", b"PK\x03\x04garbage"] {
        assert!(err(bytes, "example.com/hello", "v1.0.0").starts_with("invalid module zip"));
    }
    let z = hello_zip();
    let truncated = &z[..z.len() - 30];
    assert!(check(truncated, "example.com/hello", "v1.0.0").is_err());
}

#[test]
fn fold_matches_go_examples() {
    assert_eq!(fold_case("ABC"), fold_case("abc"));
    assert_eq!(fold_case("\u{212a}"), fold_case("k"));
    assert_eq!(fold_case("\u{17f}"), fold_case("S"));
    assert_eq!(fold_case("ς"), fold_case("Σ"));
    assert_ne!(fold_case("\u{131}"), fold_case("i"));
    assert_ne!(fold_case("ß"), fold_case("ss"));
}

#[test]
fn zip_go_mod_reads_the_root_go_mod_only() {
    let (m, v) = (ModulePath::new("example.com/m").unwrap(), Version::new("v1.0.0").unwrap());
    let with = build(&[
        E::File("example.com/m@v1.0.0/sub/go.mod", b"module example.com/m/sub\n"),
        E::File("example.com/m@v1.0.0/go.mod", b"module example.com/m\n"),
    ]);
    assert_eq!(zip_go_mod(Cursor::new(&with), &m, &v, 1 << 20).unwrap().as_deref(), Some(&b"module example.com/m\n"[..]));
    assert!(zip_go_mod(Cursor::new(&with), &m, &v, 5).unwrap_err().to_string().contains("larger than 5 bytes"));
    let without = build(&[E::File("example.com/m@v1.0.0/m.go", b"package m\n")]);
    assert_eq!(zip_go_mod(Cursor::new(&without), &m, &v, 1 << 20).unwrap(), None);
    assert!(zip_go_mod(Cursor::new(b"not a zip"), &m, &v, 1 << 20).is_err());
}

#[test]
fn absurd_entry_counts_are_refused_before_reading_entries() {
    let good =
        build(&[E::File("example.com/m@v1.0.0/go.mod", b"module example.com/m\n"), E::File("example.com/m@v1.0.0/a.go", b"package m\n")]);
    check(&good, "example.com/m", "v1.0.0").unwrap();
    let limits = ZipLimits { max_entries: 1, ..ZipLimits::default() };
    let e = check_with(&good, "example.com/m", "v1.0.0", &limits).unwrap_err().to_string();
    assert!(e.contains("declares 2 entries"), "{e}");
    // An end record claiming 65,534 entries (more than the small limit)
    // and one claiming zip64 with a count of 2^40.
    let mut lying = good.clone();
    let at = lying.windows(4).rposition(|w| w == [0x50, 0x4b, 0x05, 0x06]).unwrap();
    lying[at + 8..at + 12].copy_from_slice(&[0xFE, 0xFF, 0xFE, 0xFF]);
    let limits = ZipLimits { max_entries: 1000, ..ZipLimits::default() };
    let e = check_with(&lying, "example.com/m", "v1.0.0", &limits).unwrap_err().to_string();
    assert!(e.contains("declares 65534 entries"), "{e}");
    let mut zip64 = good[..at].to_vec();
    let record_at = zip64.len() as u64;
    zip64.extend_from_slice(&[0x50, 0x4b, 0x06, 0x06]);
    zip64.extend_from_slice(&44u64.to_le_bytes());
    zip64.extend_from_slice(&[0u8; 20]);
    zip64.extend_from_slice(&(1u64 << 40).to_le_bytes());
    zip64.extend_from_slice(&[0u8; 16]);
    zip64.extend_from_slice(&[0x50, 0x4b, 0x06, 0x07, 0, 0, 0, 0]);
    zip64.extend_from_slice(&record_at.to_le_bytes());
    zip64.extend_from_slice(&1u32.to_le_bytes());
    let mut end = good[at..].to_vec();
    end[8..12].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    zip64.extend_from_slice(&end);
    let e = check(&zip64, "example.com/m", "v1.0.0").unwrap_err().to_string();
    assert!(e.contains(&format!("declares {} entries", 1u64 << 40)), "{e}");
}
