//! Serving cached files the way the go command asks for them: many requests
//! on one keep-alive connection.

use std::time::{Duration, Instant};

use harness::http::KeepAlive;
use harness::modules::{LARGE_MODULE, LARGE_VERSION};
use harness::{start_mirror, ModuleSet};

/// Median time of `count` GETs of `path` on one keep-alive connection,
/// each checked against `expected`.
fn median_on_one_connection(node: &harness::Node, path: &str, expected: &[u8], count: usize) -> (Duration, Vec<Duration>) {
    let mut conn = KeepAlive::connect(node.addr()).expect("connect to the gateway");
    let first = conn.get(path).expect("first request");
    assert_eq!(first.status, 200, "{}", first.summary());
    let mut times = Vec::new();
    for i in 0..count {
        let started = Instant::now();
        let response = conn.get(path).unwrap_or_else(|e| panic!("request {i} on the kept-alive connection: {e}"));
        times.push(started.elapsed());
        assert_eq!(response.status, 200, "request {i}: {}", response.summary());
        assert!(response.body == expected, "request {i}: the body differs from the origin's zip");
    }
    times.sort();
    (times[times.len() / 2], times)
}

/// A small zip (about 11 KiB, like most Go modules) requested again and again
/// on one connection is answered at once, not after the client's delayed ACK
/// (20-40 ms when a response leaves in two writes and the gateway's sockets
/// lack TCP_NODELAY).
#[test]
fn a_keep_alive_client_gets_a_small_cached_zip_in_well_under_5_ms() {
    let (origin, node) = start_mirror(ModuleSet::standard().with_large(11 << 10), |o| o.log_level("info"));
    let expected = origin.modules().get(LARGE_MODULE, LARGE_VERSION).clone();
    let (median, all) = median_on_one_connection(&node, &expected.url_path("zip"), &expected.zip, 40);
    assert!(median < Duration::from_millis(5), "median {median:?} per cached 11 KiB zip on one keep-alive connection; all: {all:?}");
}

/// Ranges, conditional requests and `HEAD` on a small zip (served from
/// memory) and a large one (streamed from disk), as one keep-alive
/// connection sends them: a response with a stray body would break the
/// next one on the same connection.
#[test]
fn ranges_conditionals_and_head_are_answered_right_for_small_and_large_zips() {
    let (origin, node) = start_mirror(ModuleSet::standard().with_large(3 << 20), |o| o.log_level("info"));
    let set = origin.modules();
    let small = set.get("example.com/alpha", "v1.2.0").clone();
    let large = set.get(LARGE_MODULE, LARGE_VERSION).clone();
    let mut conn = KeepAlive::connect(node.addr()).expect("connect to the gateway");
    for v in [&small, &large] {
        let path = v.url_path("zip");
        let size = v.zip.len();
        let full = conn.get(&path).expect("GET");
        assert_eq!(full.status, 200, "{}", full.summary());
        assert!(full.body == v.zip, "{path}: body differs from the origin's zip");
        let etag = full.header("etag").expect("ETag on a zip").to_owned();
        assert_eq!(etag, format!("\"{}\"", v.zip_sha256()));

        let head = conn.request("HEAD", &path, &[]).expect("HEAD");
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.header("content-length"), Some(size.to_string().as_str()), "HEAD {path}: {:?}", head.headers);
        assert_eq!(head.header("etag"), Some(etag.as_str()));

        let cases: [(&str, u16, std::ops::Range<usize>); 7] = [
            ("bytes=0-9", 206, 0..10),
            ("bytes=-5", 206, size - 5..size),
            ("bytes=100-", 206, 100..size),
            ("bytes=0-1,5-6", 200, 0..size),
            ("bytes=abc", 200, 0..size),
            ("bytes=9-2", 200, 0..size),
            ("lines=0-9", 200, 0..size),
        ];
        for (range, status, want) in cases {
            let r = conn.request("GET", &path, &[("Range", range)]).unwrap_or_else(|e| panic!("{path} Range {range}: {e}"));
            assert_eq!(r.status, status, "{path} Range {range}: {:?}", r.headers);
            assert!(r.body == v.zip[want.clone()], "{path} Range {range}: {} bytes, wanted bytes {want:?}", r.body.len());
            if status == 206 {
                let expected = format!("bytes {}-{}/{size}", want.start, want.end - 1);
                assert_eq!(r.header("content-range"), Some(expected.as_str()), "{path} Range {range}");
            }
        }

        let r = conn.request("GET", &path, &[("Range", &format!("bytes={size}-"))]).expect("unsatisfiable range");
        assert_eq!(r.status, 416, "{path}: a range past the end");
        assert_eq!(r.header("content-range"), Some(format!("bytes */{size}").as_str()));

        let r = conn.request("GET", &path, &[("Range", "bytes=0-9"), ("If-Range", "\"other\"")]).expect("If-Range");
        assert_eq!((r.status, r.body.len()), (200, size), "{path}: If-Range with another ETag sends the whole zip");
        let r = conn.request("GET", &path, &[("Range", "bytes=0-9"), ("If-Range", &etag)]).expect("If-Range");
        assert_eq!((r.status, r.body.len()), (206, 10), "{path}: If-Range with its ETag honours the range");

        let r = conn.request("GET", &path, &[("If-None-Match", &etag)]).expect("If-None-Match");
        assert_eq!(r.status, 304, "{path}: If-None-Match with its ETag");
        assert!(r.body.is_empty());
    }
    assert_eq!(origin.count(&small.url_path("zip")), 1, "{:?}", origin.requests());
    assert_eq!(origin.count(&large.url_path("zip")), 1, "{:?}", origin.requests());
    // Both zips' bodies left with sendfile, not through the process.
    let sent = zero_copy_bytes(&node);
    assert!(sent >= (large.zip.len() + small.zip.len()) as u64, "{sent} bytes sent with sendfile");
}

/// `flotilla_zero_copy_bytes_total`: zip bytes the node sent with sendfile.
fn zero_copy_bytes(node: &harness::Node) -> u64 {
    counter(node, "flotilla_zero_copy_bytes_total").unwrap_or_else(|| panic!("no zero-copy counter"))
}

/// A counter's value from `/metrics`, by its name and labels as printed.
fn counter(node: &harness::Node, series: &str) -> Option<u64> {
    let metrics = node.get("/metrics").text();
    let line = metrics.lines().find(|l| l.strip_prefix(series).is_some_and(|rest| rest.starts_with(' ')))?;
    line.rsplit(' ').next().and_then(|v| v.parse().ok())
}

/// What a warm mirror answers most: the same `.info`, `.mod`, list,
/// `@latest` and zip again. The first answer comes from upstream, the
/// second from the catalog, later ones from memory (kept by request path,
/// without parsing it again); all must be alike, headers included, and the
/// later ones count as cache hits.
#[test]
fn repeated_requests_answered_from_memory_match_the_first_answer() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o.log_level("info"));
    let v = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    let paths = [
        ("info", v.url_path("info")),
        ("mod", v.url_path("mod")),
        ("zip", v.url_path("zip")),
        ("list", "/example.com/alpha/@v/list".to_owned()),
        ("latest", harness::modules::latest_path("example.com/alpha")),
    ];
    let mut conn = KeepAlive::connect(node.addr()).expect("connect to the gateway");
    for (kind, path) in &paths {
        let first = conn.get(path).expect("first GET");
        assert_eq!(first.status, 200, "{path}: {}", first.summary());
        let hits_series = format!("flotilla_cache_hits_total{{kind=\"{kind}\"}}");
        let requests_series = format!("flotilla_http_requests_total{{route=\"{kind}\",status=\"200\"}}");
        let hits_before = counter(&node, &hits_series).unwrap_or(0);
        let requests_before = counter(&node, &requests_series).unwrap_or(0);
        let bytes_before = counter(&node, "flotilla_served_bytes_total").unwrap_or(0);
        for round in 1..=3 {
            let again = conn.get(path).expect("GET again");
            assert_eq!(again.status, 200, "{path}, round {round}: {}", again.summary());
            assert!(again.body == first.body, "{path}, round {round}: the body differs from the first answer");
            for name in ["content-type", "cache-control", "etag", "content-length", "accept-ranges"] {
                assert_eq!(again.header(name), first.header(name), "{path}, round {round}: header {name}");
            }
        }
        assert_eq!(counter(&node, &hits_series), Some(hits_before + 3), "{path}: three cache hits counted");
        assert_eq!(counter(&node, &requests_series), Some(requests_before + 3), "{path}: three requests counted");
        let bytes = counter(&node, "flotilla_served_bytes_total").unwrap_or(0);
        assert_eq!(bytes, bytes_before + 3 * first.body.len() as u64, "{path}: the bytes of three answers counted");
    }

    // The conditional and partial requests of a kept zip are answered from
    // memory too, as from the store.
    let zip = v.url_path("zip");
    let etag = conn.get(&zip).expect("GET zip").header("etag").expect("a zip has an ETag").to_owned();
    let r = conn.request("GET", &zip, &[("If-None-Match", etag.as_str())]).expect("conditional GET");
    assert_eq!(r.status, 304, "{}", r.summary());
    assert!(r.body.is_empty());
    let r = conn.request("GET", &zip, &[("Range", "bytes=0-9")]).expect("range GET");
    assert_eq!(r.status, 206, "{}", r.summary());
    assert_eq!(r.body, v.zip[..10]);
    assert_eq!(r.header("content-range"), Some(format!("bytes 0-9/{}", v.zip.len()).as_str()));
    let r = conn.request("GET", &zip, &[("Range", "bytes=999999999-")]).expect("unsatisfiable range GET");
    assert_eq!(r.status, 416, "{}", r.summary());
}

/// `HEAD` says what this node holds and never fetches from upstream.
#[test]
fn head_of_an_uncached_version_is_404_and_fetches_nothing() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o.log_level("info"));
    let v = origin.modules().get("example.com/beta", "v1.0.0").clone();
    let mut conn = KeepAlive::connect(node.addr()).expect("connect to the gateway");
    for ext in ["info", "mod", "zip"] {
        let r = conn.request("HEAD", &v.url_path(ext), &[]).expect("HEAD");
        assert_eq!(r.status, 404, "HEAD {ext} of an uncached version: {:?}", r.headers);
    }
    let r = conn.request("HEAD", "/example.com/beta/@v/list", &[]).expect("HEAD list");
    assert_eq!(r.status, 404, "HEAD of a list never fetched");
    assert!(origin.requests().is_empty(), "HEAD reached the origin: {:?}", origin.requests());

    let r = conn.get(&v.url_path("mod")).expect("GET mod");
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = conn.request("HEAD", &v.url_path("mod"), &[]).expect("HEAD mod");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(v.go_mod.len().to_string().as_str()));
    assert_eq!(origin.count(&v.url_path("zip")), 0, "HEAD fetched the zip: {:?}", origin.requests());
}

/// Every kept zip holds an open file, so a node started under a low soft
/// limit on open files (systemd's default is 1024) raises it to the hard
/// limit before serving.
#[test]
fn the_node_raises_its_open_file_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = format!("127.0.0.1:{}", harness::node::free_port());
    let script = format!(
        "ulimit -Sn 256 && exec '{}' serve --listen {listen} --data-dir '{}' --upstream off",
        harness::node::binary().display(),
        dir.path().join("data").display()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("FLOTILLA_SUMDB", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start flotilla under a soft limit of 256 open files");
    // Once the node listens, start-up is over.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        assert!(Instant::now() < deadline, "flotilla did not start listening on {listen}");
        assert!(child.try_wait().ok().flatten().is_none(), "flotilla exited at start-up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or_else(|| panic!("no open-file limit in\n{limits}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_eq!(soft, hard, "soft limit on open files (hard {hard})");
}
