//! A blob whose bytes rot on disk is never served: the node notices the
//! sha256 mismatch, logs `corrupt blob`, fetches the zip from the origin
//! again and answers with the right bytes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use harness::{sha256_hex, start_mirror, wait_until, ModuleSet, ModuleVersion, Node, Origin};

fn warm(origin: &Origin, node: &Node) -> ModuleVersion {
    let v = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    let r = node.get(&v.url_path("zip"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == v.zip);
    assert_eq!(origin.count(&v.url_path("zip")), 1);
    let blob = node.blob_path(&v.zip_sha256());
    assert_eq!(std::fs::read(&blob).unwrap_or_else(|e| panic!("blob {} missing: {e}", blob.display())), v.zip);
    v
}

/// Flips one byte in the middle of the file, in place (bit rot, same inode).
fn flip_middle_byte(file: &Path) {
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("make blob writable");
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(file).expect("open blob");
    let middle = f.metadata().expect("blob size").len() / 2;
    let mut byte = [0u8];
    f.seek(SeekFrom::Start(middle)).and_then(|_| f.read_exact(&mut byte)).expect("read blob byte");
    byte[0] ^= 0x55;
    f.seek(SeekFrom::Start(middle)).and_then(|_| f.write_all(&byte)).and_then(|_| f.sync_all()).expect("write blob byte");
}

fn assert_served_from_origin_again(origin: &Origin, node: &Node, v: &ModuleVersion) {
    let path = v.url_path("zip");
    let r = node.try_get(&path);
    match &r {
        Ok(r) => {
            assert_eq!(r.status, 200, "{}", r.summary());
            assert!(r.body == v.zip, "served {} bytes with sha256 {} instead of the origin's", r.body.len(), sha256_hex(&r.body));
        }
        Err(e) => panic!("request for the corrupted zip failed instead of being repaired: {e}"),
    }
    assert_eq!(origin.count(&path), 2, "the zip was not fetched again; origin saw {:?}", origin.requests());
    node.wait_for_log("corrupt blob", Duration::from_secs(5));
    let blob = node.blob_path(&v.zip_sha256());
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read(&blob).is_ok_and(|b| b == v.zip)),
        "blob {} was not repaired",
        blob.display()
    );
}

#[test]
fn corrupt_blob_found_after_restart_is_refetched_and_never_served() {
    let (origin, mut node) = start_mirror(ModuleSet::standard(), |o| o);
    let v = warm(&origin, &node);
    node.stop();
    flip_middle_byte(&node.blob_path(&v.zip_sha256()));
    node.restart();
    assert_served_from_origin_again(&origin, &node, &v);
}

#[test]
fn blob_corrupted_while_node_runs_is_refetched_and_never_served() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let v = warm(&origin, &node);
    flip_middle_byte(&node.blob_path(&v.zip_sha256()));
    assert_served_from_origin_again(&origin, &node, &v);
}
