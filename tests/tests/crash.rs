//! `kill -9` in the middle of an upstream download: the restarted node has
//! no temp files and no blob for the half-fetched zip, never serves a
//! partial file, and fetches the complete zip again on the next request.

use std::path::Path;
use std::time::Duration;

use harness::modules::{LARGE_MODULE, LARGE_VERSION};
use harness::{http, sha256_hex, start_mirror, wait_for, ModuleSet};

/// `FLOTILLA_E2E_LARGE_MIB` overrides the size of the large zip (default 16).
fn large_bytes() -> usize {
    let mib = std::env::var("FLOTILLA_E2E_LARGE_MIB").ok().and_then(|s| s.parse().ok()).unwrap_or(16usize);
    mib << 20
}

/// At 2 MiB/s a 16 MiB zip takes 8 s, plenty of time to kill the node.
const ORIGIN_RATE: u64 = 2 << 20;
/// The node counts as mid-download once this much has left the origin.
const MID_DOWNLOAD: u64 = 2 << 20;

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every file under `blobs/` must be named after the sha256 of its bytes.
fn assert_blobs_intact(blobs: &Path) {
    for file in files_under(blobs) {
        let bytes = std::fs::read(&file).expect("read blob");
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        assert_eq!(sha256_hex(&bytes), name, "blob {} holds other bytes ({} bytes)", file.display(), bytes.len());
    }
}

#[test]
fn kill9_mid_download_leaves_no_partial_blob_and_restart_refetches_complete_zip() {
    let set = ModuleSet::standard().with_large(large_bytes());
    let (origin, mut node) = start_mirror(set, |o| o.env("FLOTILLA_UPSTREAM__TIMEOUT", "120s").log_level("info"));
    let expected = origin.modules().get(LARGE_MODULE, LARGE_VERSION).clone();
    let path = expected.url_path("zip");
    let sha = expected.zip_sha256();
    origin.throttle(&path, ORIGIN_RATE);

    let (addr, client_path) = (node.addr(), path.clone());
    let client = std::thread::spawn(move || http::get(addr, &client_path));
    wait_for("the node to be mid-download", Duration::from_secs(30), || origin.bytes_sent(&path) >= MID_DOWNLOAD);
    let tmp_files = files_under(&node.data_dir().join("tmp"));
    node.kill9();

    match client.join().expect("client thread") {
        Err(_) => {}
        Ok(r) => assert!(
            r.status != 200 || r.body == expected.zip,
            "a killed node served a partial zip as complete: 200 with {} of {} bytes",
            r.body.len(),
            expected.zip.len()
        ),
    }
    assert_eq!(origin.count(&path), 1, "origin requests: {:?}", origin.requests());
    eprintln!("temp files while downloading: {tmp_files:?}");

    node.restart();
    let leftovers = files_under(&node.data_dir().join("tmp"));
    assert!(leftovers.is_empty(), "temp files left after restart: {leftovers:?}");
    assert!(!node.blob_path(&sha).exists(), "a blob for the half-downloaded zip exists");
    assert_blobs_intact(&node.data_dir().join("blobs"));

    origin.unthrottle(&path);
    let r = node.get(&path);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(sha256_hex(&r.body), sha, "zip after restart: {} bytes", r.body.len());
    assert_eq!(origin.count(&path), 2, "origin requests: {:?}", origin.requests());
    assert!(node.blob_path(&sha).is_file(), "the complete zip was not stored as a blob");
    assert_blobs_intact(&node.data_dir().join("blobs"));
}

#[test]
fn origin_dying_mid_download_leaves_nothing_behind_and_next_request_gets_complete_zip() {
    let set = ModuleSet::standard().with_large(large_bytes());
    let (origin, node) = start_mirror(set, |o| o.env("FLOTILLA_UPSTREAM__TIMEOUT", "120s").log_level("info"));
    let expected = origin.modules().get(LARGE_MODULE, LARGE_VERSION).clone();
    let path = expected.url_path("zip");
    origin.throttle(&path, ORIGIN_RATE);

    let (addr, client_path) = (node.addr(), path.clone());
    let client = std::thread::spawn(move || http::get(addr, &client_path));
    wait_for("the node to be mid-download", Duration::from_secs(30), || origin.bytes_sent(&path) >= MID_DOWNLOAD);
    origin.stop();

    match client.join().expect("client thread") {
        Err(_) => {}
        Ok(r) => assert!(
            r.status != 200 || r.body == expected.zip,
            "a failed upstream fetch was served as complete: 200 with {} of {} bytes",
            r.body.len(),
            expected.zip.len()
        ),
    }
    let tmp = node.data_dir().join("tmp");
    wait_for("the failed fetch's temp file to be removed", Duration::from_secs(10), || files_under(&tmp).is_empty());
    assert!(!node.blob_path(&expected.zip_sha256()).exists(), "a blob for the failed fetch exists");
    assert_blobs_intact(&node.data_dir().join("blobs"));

    origin.restart();
    origin.unthrottle(&path);
    let r = node.get(&path);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(sha256_hex(&r.body), expected.zip_sha256(), "zip after the origin returned: {} bytes", r.body.len());
}
