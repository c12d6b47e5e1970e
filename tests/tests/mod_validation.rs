//! A `.mod` is kept forever, so it is checked first: it must be a go.mod
//! (an HTML page that a captive portal or an intercepting proxy answers
//! with `200` is refused with `502` and never cached), and it must equal
//! the go.mod inside the version's zip, whichever arrives first. The module
//! path it declares may differ from the requested one (forks).

use harness::modules::build_zip;
use harness::{start_mirror, ModuleSet, ModuleVersion, Tamper};

const PORTAL: &[u8] =
    b"<!DOCTYPE html>\n<html><head><title>Guest Wi-Fi</title></head>\n<body>Accept the terms to continue.</body></html>\n";

fn assert_refused(what: &str, r: &harness::Response, want: &str) {
    assert_eq!(r.status, 502, "{what}: {}", r.summary());
    assert!(r.content_type().starts_with("text/plain"), "{what}: {}", r.summary());
    let text = r.text();
    assert_eq!(text.trim_end().lines().count(), 1, "{what}: want one line, got {text:?}");
    assert!(text.contains(want), "{what}: want {want:?} in {text:?}");
}

#[test]
fn html_page_answered_for_a_mod_is_refused_with_502_and_never_cached() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let v = origin.modules().get("example.com/alpha", "v1.1.0").clone();
    let path = v.url_path("mod");
    origin.tamper(&path, Tamper::Body(PORTAL.to_vec()));
    for attempt in 1..=2 {
        assert_refused(&format!("attempt {attempt}"), &node.get(&path), "HTML");
    }
    assert_eq!(origin.count(&path), 2, "a refused .mod must not be remembered");

    origin.untamper(&path);
    let r = node.get(&path);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.body, v.go_mod);
}

#[test]
fn mod_that_declares_another_module_path_is_kept() {
    let mut set = ModuleSet::standard();
    let go_mod = b"module github.com/original/project\n\ngo 1.18\n".to_vec();
    let files = vec![("go.mod".to_owned(), go_mod.clone()), ("fork.go".to_owned(), b"package project\n".to_vec())];
    set.insert(ModuleVersion {
        path: "example.com/fork".into(),
        version: "v1.0.0".into(),
        info: br#"{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}"#.to_vec(),
        zip: build_zip("example.com/fork", "v1.0.0", &files),
        go_mod: go_mod.clone(),
    });
    let (origin, node) = start_mirror(set, |o| o);
    let v = origin.modules().get("example.com/fork", "v1.0.0").clone();
    let r = node.get(&v.url_path("mod"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.body, go_mod);
    let r = node.get(&v.url_path("zip"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == v.zip);
}

#[test]
fn zip_whose_go_mod_differs_from_the_recorded_mod_is_refused() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let v = origin.modules().get("example.com/beta", "v1.0.0").clone();
    assert_eq!(node.get(&v.url_path("mod")).status, 200);

    let files = vec![
        ("go.mod".to_owned(), b"module example.com/beta\n\nrequire example.com/evil v1.0.0\n".to_vec()),
        ("beta.go".to_owned(), b"package beta\n".to_vec()),
    ];
    let swapped = ModuleVersion { zip: build_zip(&v.path, &v.version, &files), ..v.clone() };
    origin.tamper(&v.url_path("zip"), Tamper::Body(swapped.zip.clone()));
    assert_refused("zip", &node.get(&v.url_path("zip")), "differs from the .mod this mirror recorded");
    assert!(!node.blob_path(&swapped.zip_sha256()).exists(), "the refused zip was kept");

    origin.untamper(&v.url_path("zip"));
    let r = node.get(&v.url_path("zip"));
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.body == v.zip);
}

#[test]
fn mod_that_differs_from_the_recorded_zips_go_mod_is_refused() {
    let (origin, node) = start_mirror(ModuleSet::standard(), |o| o);
    let v = origin.modules().get("example.com/beta", "v1.3.0").clone();
    assert_eq!(node.get(&v.url_path("zip")).status, 200);

    let path = v.url_path("mod");
    origin.tamper(&path, Tamper::Body(b"module example.com/beta\n\nrequire example.com/evil v1.0.0\n".to_vec()));
    assert_refused(".mod", &node.get(&path), "differs from the go.mod inside the zip");

    origin.untamper(&path);
    let r = node.get(&path);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.body, v.go_mod);
}
