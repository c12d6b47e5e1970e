//! Malformed GOPROXY requests get a 4xx with a one-line text/plain reason,
//! never a 5xx, never reach the upstream, and leave the node healthy.

use harness::{start_mirror, ModuleSet};

/// Malformed requests: `(path as sent on the wire, what is wrong)`.
fn malformed() -> Vec<(String, &'static str)> {
    let long = format!("/example.com/{}/@v/list", "a".repeat(2000));
    let long_version = format!("/example.com/alpha/@v/v1.0.0-{}.zip", "a".repeat(2000));
    let rows: Vec<(&str, &'static str)> = vec![
        ("/example.com/../alpha/@v/list", "'..' element"),
        ("/example.com/%2e%2e/alpha/@v/list", "percent-encoded '..' element"),
        ("/%2e%2e/%2e%2e/etc/passwd", "encoded traversal without @v"),
        ("/example.com/alpha/@v/..%2F..%2Fetc%2Fpasswd.zip", "encoded traversal in the version"),
        ("/example.com/Alpha/@v/list", "uppercase without '!'"),
        ("/example.com/alpha/@v/V1.0.0.zip", "uppercase version without '!'"),
        ("/example.com/!1alpha/@v/list", "'!' followed by a digit"),
        ("/example.com/!!alpha/@v/list", "'!!'"),
        ("/example.com/alpha!/@v/list", "trailing '!'"),
        ("/example.com/alpha/@v/v1.0.0-rc!.zip", "trailing '!' in the version"),
        ("/example.com/al%00pha/@v/list", "NUL in the path"),
        ("/example.com/alpha/@v/v1.0.0%00.zip", "NUL in the version"),
        ("/example.com/alpha/@v/list%00", "NUL after list"),
        ("/example.com%2Falpha/@v/list", "%2F inside the module path"),
        ("/example.com/alpha%2Fv2/@v/list", "%2F before the major suffix"),
        ("/example.com/al%zzpha/@v/list", "malformed percent-escape"),
        (&long, "2000-byte module path"),
        (&long_version, "2000-byte version"),
        ("/example.com/alpha/@v/v0.0.0-20240102030405-abc_def.zip", "pseudo-version with '_' in the revision"),
        ("/example.com/alpha/@v/v0.0.0-20240102..030405-abcdefabcdef.zip", "pseudo-version with an empty identifier"),
        ("/example.com/alpha/@v/v1.2.3-01.zip", "leading zero in a numeric pre-release"),
        ("/example.com/alpha/@v/v01.0.0.zip", "leading zero in the major"),
        ("/example.com/alpha/@v/", "@v/ with no file"),
        ("/example.com/alpha/@v/.zip", "empty version"),
        ("/example.com/alpha/@v/v1.0.0.tar", "unknown extension"),
        ("/example.com/alpha/@v/v1.0.0", "no extension"),
        ("/example.com/alpha/@v/v1.0.zip", "non-canonical .zip version"),
        ("/example.com/alpha/@v/v1.0.0+meta.mod", "build metadata in a .mod version"),
        ("/example.com/alpha/v1/@v/list", "/v1 major suffix"),
        ("/example.com/alpha/v0/@v/list", "/v0 major suffix"),
        ("/example.com/alpha/@v/latest.info", "'latest' as a version"),
        ("/example.com/alpha/@v/v2.0.0.mod", "v2 version without /v2 path"),
        ("/example.com/alpha/v2/@v/v1.0.0.zip", "v1 version on a /v2 path"),
        ("/example.com/al%20pha/@v/list", "space in the path"),
        ("/example.com/%C3%BCmlaut/@v/list", "non-ASCII in the path"),
        ("/example.com/%FF/@v/list", "invalid UTF-8"),
        ("/example/alpha/@v/list", "no dot in the host"),
        ("/-example.com/alpha/@v/list", "leading dash"),
        ("/example.com//alpha/@v/list", "empty element"),
        ("/example.com/alpha/@v/v1.0.0.info/extra", "trailing segment after the file"),
        ("/example.com/alpha/@latest/extra", "trailing segment after @latest"),
        ("/example.com/con/@v/list", "Windows reserved name"),
        ("/example.com/foo~1/@v/list", "Windows short name"),
        ("/example.com/.hidden/@v/list", "leading dot in an element"),
        ("/@v/list", "empty module path"),
        ("/example.com/alpha", "neither @v nor @latest"),
    ];
    rows.into_iter().map(|(p, why)| (p.to_owned(), why)).collect()
}

/// What is wrong with the answer to a malformed request, if anything.
fn problem(r: &harness::Response) -> Option<String> {
    if !matches!(r.status, 400 | 404 | 410) {
        return Some(format!("status {}", r.status));
    }
    if !r.content_type().starts_with("text/plain") {
        return Some(format!("content-type {:?}", r.content_type()));
    }
    let text = r.text();
    let line = text.strip_suffix('\n').unwrap_or(&text);
    if line.trim().is_empty() || line.contains('\n') {
        return Some(format!("body is not one line: {text:?}"));
    }
    None
}

#[test]
fn malformed_requests_get_4xx_with_one_line_text_reason_and_node_stays_healthy() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o.log_level("info"));
    let rows = malformed();
    assert!(rows.len() >= 25);
    let mut failures = Vec::new();
    for (path, why) in &rows {
        match node.try_get(path) {
            Ok(r) => {
                if let Some(p) = problem(&r) {
                    failures.push(format!("{why}: GET {path:.120} -> {p}: {}", r.summary()));
                }
            }
            Err(e) => failures.push(format!("{why}: GET {path:.120} -> transport error {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} malformed requests answered wrongly:\n{}", failures.len(), rows.len(), failures.join("\n"));

    assert_eq!(node.get("/healthz").status, 200);
    let good = origin.modules().get("example.com/alpha", "v1.2.0").clone();
    let r = node.get(&good.url_path("zip"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == good.zip);
}

#[test]
fn malformed_requests_never_reach_upstream() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o.log_level("info"));
    for (path, _) in malformed() {
        let _ = node.try_get(&path);
    }
    let forwarded: Vec<String> = origin.requests().iter().map(|p| p.chars().take(120).collect()).collect();
    assert!(forwarded.is_empty(), "{} malformed requests were forwarded upstream:\n{}", forwarded.len(), forwarded.join("\n"));
}

#[test]
fn unknown_but_wellformed_module_answers_404_not_5xx() {
    let (_origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    for path in [
        "/example.com/nosuch/@v/list",
        "/example.com/nosuch/@latest",
        "/example.com/alpha/@v/v1.9.9.info",
        "/example.com/alpha/@v/v1.9.9.mod",
        "/example.com/alpha/@v/v1.9.9.zip",
        "/example.com/alpha/@v/v0.0.0-2024-abc.zip",
        "/example.com/alpha/@v/v0.0.0-20240102030405-.zip",
    ] {
        let r = node.get(path);
        assert!(matches!(r.status, 404 | 410), "GET {path}: {}", r.summary());
        assert!(problem(&r).is_none(), "GET {path}: {}", r.summary());
    }
}
