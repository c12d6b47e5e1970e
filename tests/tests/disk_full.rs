//! A full disk: a fill is refused with 507 and a reason naming the data
//! directory, `/readyz` says why, nothing partial is stored, what is cached
//! is still served, and the node takes fills again by itself once space is
//! freed. Runs on a tmpfs the test mounts over the node's data directory
//! (needs root; skipped with a message where it cannot mount).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::{start_mirror, wait_until, ModuleSet};

/// Unmounts (lazily) when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mount> {
    let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
    match out {
        Ok(out) if out.status.success() => Some(Mount(dir.to_path_buf())),
        Ok(out) => {
            eprintln!("SKIPPED: cannot mount a tmpfs on {} (needs root): {}", dir.display(), String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount: {e}");
            None
        }
    }
}

/// Fills the file system holding `file` completely, then gives back
/// `leave` bytes (so about that much is free).
fn fill_leaving(file: &Path, leave: u64) {
    let mut f = File::options().create(true).append(true).open(file).unwrap();
    let chunk = vec![0xa5u8; 1 << 20];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = f.sync_all();
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(leave)).unwrap();
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default()
}

#[test]
fn a_full_disk_refuses_fills_with_the_reason_and_heals_when_space_is_freed() {
    const LARGE: usize = 24 << 20;
    let (origin, mut node) = start_mirror(ModuleSet::standard().with_large(LARGE), |o| o);
    node.stop();
    let data = node.data_dir();
    let Some(_mount) = mount_tmpfs(&data, "128m") else { return };
    node.restart();

    let cached = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    assert_eq!(node.get(&cached.url_path("zip")).status, 200);
    let large = origin.modules().get("example.com/large", "v1.0.0").clone();
    let filler = data.join("filler");
    let data_name = data.display().to_string();

    // 1. Less than the reserve free: refused before anything is fetched.
    fill_leaving(&filler, 4 << 20);
    let r = node.get(&large.url_path("zip"));
    assert_eq!(r.status, 507, "{}", r.summary());
    assert!(r.text().contains(&data_name) && r.text().contains("full"), "the reason names the data directory: {}", r.text());
    assert_eq!(origin.count(&large.url_path("zip")), 0, "nothing fetched while the disk is full");
    let ready = node.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.summary());
    assert!(ready.text().contains(&data_name) && ready.text().contains("full"), "/readyz says why: {}", ready.text());
    let served = node.get(&cached.url_path("zip"));
    assert_eq!(served.status, 200, "what is cached is still served: {}", served.summary());
    assert!(served.body == cached.zip);

    // 2. More than the reserve free but less than the zip: the download
    // runs into ENOSPC; 507, and the partial file is gone.
    std::fs::remove_file(&filler).unwrap();
    fill_leaving(&filler, 20 << 20);
    let r = node.get(&large.url_path("zip"));
    assert_eq!(r.status, 507, "{}", r.summary());
    assert!(r.text().contains(&data_name), "{}", r.text());
    assert!(leftovers(&data.join("tmp")).is_empty(), "no partial file left: {:?}", leftovers(&data.join("tmp")));
    assert!(!node.blob_path(&large.zip_sha256()).exists(), "no blob stored");
    assert_eq!(node.get("/readyz").status, 200, "the partial file's space came back: ready again");
    assert!(node.logs().contains("is full"), "the log says why");

    // 3. Space freed: the node takes fills again by itself.
    fill_leaving(&filler, 2 << 20);
    assert_eq!(node.get("/readyz").status, 503);
    std::fs::remove_file(&filler).unwrap();
    assert!(wait_until(Duration::from_secs(10), || node.get("/readyz").status == 200), "ready again once space is freed");
    let r = node.get(&large.url_path("zip"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == large.zip, "the right bytes");
    assert!(node.blob_path(&large.zip_sha256()).exists());
    assert!(node.is_running());
    node.stop();
}

/// A follower whose disk fills up keeps applying the raft log (the reserve
/// is left for it), defers pulling blobs with a reason naming its data
/// directory, says so on `/readyz`, and catches up by itself once space is
/// freed.
#[test]
fn a_cluster_node_with_a_full_disk_keeps_raft_going_and_catches_up_when_space_is_freed() {
    use harness::cluster::{Cluster, ClusterOptions};
    let origin = harness::Origin::start(ModuleSet::standard().with_large(24 << 20));
    let env = vec![("FLOTILLA_REPLICATION__RETRY_MAX", "1s"), ("FLOTILLA_REPLICATION__ANTI_ENTROPY_INTERVAL", "1s")];
    let mut cluster = Cluster::start(&origin.url(), ClusterOptions { env, ..Default::default() });
    let (leader, _) = cluster.wait_converged(&[1, 2, 3], Duration::from_secs(30));
    let full = cluster.others(leader)[0];

    // Move the follower's data onto a small tmpfs (same files, so the same
    // raft state).
    cluster.node_mut(full).stop();
    let data = cluster.node(full).data_dir();
    let saved = data.with_file_name("data-saved");
    std::fs::rename(&data, &saved).unwrap();
    std::fs::create_dir(&data).unwrap();
    let Some(_mount) = mount_tmpfs(&data, "96m") else { return };
    let copied = Command::new("cp").arg("-a").arg(format!("{}/.", saved.display())).arg(&data).status().unwrap();
    assert!(copied.success());
    cluster.node_mut(full).restart();
    cluster.wait_converged(&[1, 2, 3], Duration::from_secs(30));

    // 20 MiB free: more than the 16 MiB reserve, less than the 24 MiB zip
    // the leader caches next. Pulling it would eat the reserve.
    let filler = data.join("filler");
    fill_leaving(&filler, 20 << 20);
    let v = origin.modules().get("example.com/large", "v1.0.0").clone();
    let r = cluster.get(leader, &v.url_path("zip"));
    assert_eq!(r.status, 200, "{}", r.summary());
    let data_name = data.display().to_string();
    let node = cluster.node(full);
    assert!(wait_until(Duration::from_secs(10), || node.logs().contains("is full")), "the pull is deferred with the reason");
    // Later writes still commit and the full node still applies them.
    let later = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    for ext in ["info", "zip"] {
        let r = cluster.get(leader, &later.url_path(ext));
        assert_eq!(r.status, 200, "{}", r.summary());
    }
    // Raft keeps going on the full node: it applies the new entry.
    cluster.wait_for("the full node applies what the leader committed", Duration::from_secs(10), || {
        let (l, f) = (cluster.status(leader), cluster.status(full));
        matches!((l, f), (Ok(l), Ok(f)) if l.committed.is_some() && f.last_applied >= l.committed)
    });
    assert!(!node.blob_path(&v.zip_sha256()).exists());
    assert!(leftovers(&data.join("partial")).is_empty(), "no partial download eats the reserve");
    fill_leaving(&filler, 4 << 20);
    let ready = node.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.summary());
    assert!(ready.text().contains(&data_name), "{}", ready.text());

    std::fs::remove_file(&filler).unwrap();
    assert!(wait_until(Duration::from_secs(20), || node.blob_path(&v.zip_sha256()).exists()), "the blob is pulled once space is freed");
    assert!(wait_until(Duration::from_secs(10), || node.get("/readyz").status == 200));
    let r = node.get(&v.url_path("zip"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == v.zip);
    cluster.node_mut(full).stop();
}
