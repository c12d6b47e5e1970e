//! The status page at `/`: what a person sees when they open the mirror's
//! address in a browser. Plain HTML (no scripts, no external assets) with
//! the members, the primary, replication lag, recent fetches, the cache size
//! and the lines that point the go command at the mirror.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::cluster::{get_following, Cluster, ClusterOptions};
use harness::http::KeepAlive;
use harness::{start_mirror, ModuleSet, Origin};

const CONVERGE: Duration = Duration::from_secs(20);
const REPLICATE: Duration = Duration::from_secs(15);

fn page_of(addr: std::net::SocketAddr, host: &str) -> String {
    let mut conn = KeepAlive::connect(addr).expect("connect");
    let resp = conn.request("GET", "/", &[("X-Forwarded-Host", host)]).expect("GET /");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.content_type().starts_with("text/html"), "content type {:?}", resp.content_type());
    resp.text()
}

/// Self-contained: nothing is loaded from elsewhere and nothing runs.
fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!doctype html>"), "not an HTML document: {}", &html[..html.len().min(80)]);
    assert!(!html.contains("<script"), "the page must work without JavaScript");
    for external in ["src=\"http", "href=\"http://cdn", "@import", "<link "] {
        assert!(!html.contains(external), "the page loads an external asset ({external})");
    }
}

#[test]
fn every_gateway_shows_members_primary_lag_fetches_and_the_goproxy_lines() {
    let origin = Origin::start(ModuleSet::standard());
    let cluster = Cluster::start(&origin.url(), ClusterOptions::default());
    let (primary, _) = cluster.wait_converged(&[1, 2, 3], CONVERGE);
    let follower = cluster.others(primary)[0];

    let v = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    let fetched = get_following(&format!("{}{}", cluster.url(follower), v.url_path("zip"))).expect("download through a follower");
    assert_eq!(fetched.status, 200, "{}", fetched.summary());
    for id in cluster.ids() {
        cluster.wait_for("the zip on every node", REPLICATE, || cluster.try_get(id, &v.url_path("zip")).is_ok_and(|r| r.status == 200));
    }

    for id in cluster.ids() {
        let html = page_of(cluster.addr(id), "goproxy.corp.example:8080");
        assert_self_contained(&html);
        assert!(html.contains(&format!("node {id}")), "node {id}'s page does not name it");
        assert!(
            html.contains(&format!("<td>{primary}</td><td>primary</td>")),
            "node {id}'s member table does not show node {primary} as primary:\n{html}"
        );
        for other in cluster.others(primary) {
            assert!(html.contains(&format!("<td>{other}</td><td>follower</td>")), "node {id}: node {other} not shown as follower");
            assert!(html.contains(&cluster.url(other)), "node {id}: node {other}'s gateway URL missing");
        }
        assert!(html.contains("blobs missing"), "node {id}: no replication lag column");
        for line in [
            "go env -w GOPROXY=http://goproxy.corp.example:8080",
            "export GOPROXY=http://goproxy.corp.example:8080",
            "$env:GOPROXY = \"http://goproxy.corp.example:8080\"",
            "set GOPROXY=http://goproxy.corp.example:8080",
        ] {
            assert!(html.contains(line), "node {id}: the setup line {line:?} is missing");
        }
    }
    // The count is updated when a pulled blob is committed, which can trail
    // the first 200 a follower serves from it by a moment.
    for id in cluster.ids() {
        cluster.wait_for(&format!("node {id}'s page to count the stored zip"), REPLICATE, || {
            page_of(cluster.addr(id), "mirror").contains("Zips stored</dt><dd>1 ·")
        });
    }

    let on_primary = page_of(cluster.addr(primary), "mirror");
    assert!(
        on_primary.contains("<code>example.com/alpha</code></td><td><code>v1.2.0</code></td><td>.zip</td>"),
        "the primary's recent fetches do not list the zip it fetched:\n{on_primary}"
    );
    assert!(on_primary.contains("(this node)"), "the primary's page does not say it is the primary");
}

#[test]
fn a_single_node_page_says_so_escapes_what_it_shows_and_lists_failed_fetches() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let v = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    assert_eq!(node.get(&v.url_path("zip")).status, 200);
    assert_eq!(node.get("/example.com/alpha/@v/v1.9.9.info").status, 404);

    let html = page_of(node.addr(), "mirror.local:3000");
    assert_self_contained(&html);
    assert!(html.contains("single node"), "a single node's page does not say it is one");
    assert!(html.contains("<td>.zip</td>") && html.contains("<span class=\"ok\">stored</span>"));
    assert!(html.contains("<td><code>v1.9.9</code></td><td>.info</td>"), "the failed fetch is not listed:\n{html}");
    assert!(html.contains("export GOPROXY=http://mirror.local:3000"));

    // A Host that is not a host name never reaches the page as markup.
    let mut conn = KeepAlive::connect(node.addr()).expect("connect");
    let hostile = conn.request("GET", "/", &[("X-Forwarded-Host", "x\"><script>alert(1)</script>")]).expect("GET /");
    assert_eq!(hostile.status, 200);
    assert!(!hostile.text().contains("<script>alert"), "a forged host header was echoed unescaped");
}

/// Looks at the page as a person would: headless Chromium renders it to a
/// PNG (left in the target directory for a human to open). Skips, saying
/// so, where Debian's `chromium` is not installed.
#[test]
fn the_page_renders_in_a_real_browser() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|b| which(b)) else {
        eprintln!("SKIPPED: no chromium on PATH (apt-get install chromium) — the page was not rendered");
        return;
    };
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let v = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    assert_eq!(node.get(&v.url_path("zip")).status, 200);

    let out_dir = screenshot_dir();
    let png = out_dir.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().expect("chromium profile dir");
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,1400",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--screenshot={}", png.display()),
            &format!("{}/", node.url()),
        ])
        .output()
        .expect("run chromium");
    assert!(status.status.success(), "chromium failed: {}", String::from_utf8_lossy(&status.stderr));
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG");
    // A blank page compresses to a few KiB; the rendered tables and text do not.
    assert!(bytes.len() > 20_000, "the screenshot is nearly empty ({} bytes): the page did not render", bytes.len());
    eprintln!("status page screenshot: {}", png.display());
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}
