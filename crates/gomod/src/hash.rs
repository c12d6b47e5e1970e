//! `h1:` hashes (x/mod `dirhash.Hash1`) and go.sum lines.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::path::ModulePath;
use crate::version::Version;

/// `dirhash.Hash1` over `(name, sha256(content))` pairs: the pairs are sorted
/// by name, each becomes `hex(sha256)  name\n`, and the result is `h1:` +
/// base64(sha256(all lines)). Names must not contain `\n` (`check_zip`
/// rejects such zips before hashing).
pub fn h1_from_file_hashes<I: IntoIterator<Item = (String, [u8; 32])>>(files: I) -> String {
    let mut files: Vec<(String, [u8; 32])> = files.into_iter().collect();
    files.sort();
    let mut summary = Sha256::new();
    for (name, sum) in &files {
        summary.update(hex::encode(sum));
        summary.update(b"  ");
        summary.update(name.as_bytes());
        summary.update(b"\n");
    }
    format!("h1:{}", STANDARD.encode(summary.finalize()))
}

/// The `/go.mod` hash: `Hash1` over one file named `go.mod` with this content.
pub fn h1_go_mod(content: &[u8]) -> String {
    h1_from_file_hashes([("go.mod".to_string(), Sha256::digest(content).into())])
}

/// The go.sum lines of a version: `<path> <version> <zip h1>` (if given) and
/// `<path> <version>/go.mod <mod h1>`, each ending in `\n`. The hashes are
/// passed as returned by this crate, `h1:` prefix included.
pub fn go_sum_lines(module: &ModulePath, version: &Version, zip_h1: Option<&str>, mod_h1: &str) -> String {
    let mut out = String::new();
    if let Some(zip_h1) = zip_h1 {
        out.push_str(&format!("{module} {version} {zip_h1}\n"));
    }
    out.push_str(&format!("{module} {version}/go.mod {mod_h1}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn worked_example() {
        let go_mod = b"module example.com/hello\n";
        assert_eq!(hex::encode(sha(go_mod)), "ed0a2883675acfc3aacb70e8d14cc9b7bf8fbfbc917231f573b79b56a6162fdc");
        let files = vec![
            ("example.com/hello@v1.0.0/hello.go".to_string(), sha(b"package hello\n")),
            ("example.com/hello@v1.0.0/go.mod".to_string(), sha(go_mod)),
        ];
        assert_eq!(h1_from_file_hashes(files), "h1:v/u/g2S1hZaWZImyAVXAGG42N1pWX/UTgAYidytBT84=");
        assert_eq!(h1_go_mod(go_mod), "h1:fpu2YBs8Cn+uPELS7pdczZmF9hlK1PibTkwahffYMfo=");
    }

    #[test]
    fn dirs_example() {
        let files = vec![
            ("example.com/dirs@v1.0.0/go.mod".to_string(), sha(b"module example.com/dirs\n")),
            ("example.com/dirs@v1.0.0/sub/".to_string(), sha(b"")),
            ("example.com/dirs@v1.0.0/sub/b.go".to_string(), sha(b"package sub\n")),
        ];
        assert_eq!(h1_from_file_hashes(files), "h1:UyXC2rYaOefNirpgLWWTsO2eCdYcuoqrlezy5lxdYSk=");
    }

    #[test]
    fn empty_set() {
        // sha256 of no lines at all
        assert_eq!(h1_from_file_hashes(Vec::new()), "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn sum_lines() {
        let m = ModulePath::new("example.com/hello").unwrap();
        let v = Version::new("v1.0.0").unwrap();
        let zip = "h1:v/u/g2S1hZaWZImyAVXAGG42N1pWX/UTgAYidytBT84=";
        let md = "h1:fpu2YBs8Cn+uPELS7pdczZmF9hlK1PibTkwahffYMfo=";
        assert_eq!(go_sum_lines(&m, &v, Some(zip), md), format!("example.com/hello v1.0.0 {zip}\nexample.com/hello v1.0.0/go.mod {md}\n"));
        assert_eq!(go_sum_lines(&m, &v, None, md), format!("example.com/hello v1.0.0/go.mod {md}\n"));
    }
}
