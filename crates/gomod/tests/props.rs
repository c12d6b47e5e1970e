//! Property tests: parsers never panic on arbitrary input, escaping round-trips,
//! and `compare` is a total order.

use std::cmp::Ordering;
use std::io::{Cursor, Write};

use gomod::{
    canonical, check_zip, compare, escape_string, go_mod_module_path, is_valid_semver, parse_info, parse_request, unescape_string,
    ModulePath, Version, ZipLimits,
};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, ..ProptestConfig::default() }
}

/// Strings built from the characters that matter to the parsers.
fn path_like() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9./@!%~+_ -]{0,60}").unwrap()
}

/// Valid module paths: host, optional elements with uppercase, optional major suffix.
fn module_path() -> impl Strategy<Value = String> {
    let host = proptest::string::string_regex("[a-z0-9]{1,8}\\.(com|org|io)").unwrap();
    let elem = proptest::string::string_regex("[a-zA-Z0-9][a-zA-Z0-9_~-]{0,8}[a-zA-Z0-9]").unwrap();
    (host, proptest::collection::vec(elem, 0..4), proptest::option::of(2u32..30))
        .prop_map(|(h, elems, major)| {
            let mut p = h;
            for e in elems {
                p.push('/');
                p.push_str(&e);
            }
            if let Some(m) = major {
                p.push_str(&format!("/v{m}"));
            }
            p
        })
        .prop_filter("CheckPath rejects Windows names and ~digits", |p| ModulePath::new(p).is_ok())
}

/// Versions, valid and not.
fn version_like() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex("v[0-9]{1,3}(\\.[0-9]{1,3}){0,3}(-[0-9A-Za-z.-]{0,8})?(\\+[0-9A-Za-z.]{0,6})?").unwrap(),
        proptest::string::string_regex("[vV0-9.+-]{0,12}").unwrap(),
    ]
}

fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        if w.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).is_ok() {
            w.write_all(data).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_request_never_panics(s in "\\PC{0,80}") {
        let _ = parse_request(&s);
    }

    #[test]
    fn parse_request_never_panics_on_pathlike(m in path_like(), tail in prop_oneof![
        Just("/@v/list".to_string()), Just("/@latest".to_string()),
        path_like().prop_map(|v| format!("/@v/{v}.info")),
        path_like().prop_map(|v| format!("/@v/{v}.mod")),
    ]) {
        if let Ok(req) = parse_request(&format!("/{m}{tail}")) {
            prop_assert!(ModulePath::new(req.module().as_str()).is_ok());
        }
    }

    #[test]
    fn from_escaped_never_panics(s in "\\PC{0,60}") {
        let _ = ModulePath::from_escaped(&s);
        let _ = ModulePath::new(&s);
        let _ = unescape_string(&s);
    }

    #[test]
    fn version_new_never_panics(s in "\\PC{0,40}") {
        let _ = Version::new(&s);
        let _ = Version::from_escaped(&s);
        let _ = gomod::is_pseudo_version(&s);
    }

    #[test]
    fn parse_info_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_info(&b);
    }

    #[test]
    fn go_mod_module_path_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = go_mod_module_path(&b);
    }

    #[test]
    fn go_mod_module_path_never_panics_on_gomod_like_text(s in "(module|require|\\(|\\)|\"|`|//|\\\\|[ \t\n]|[a-z./])*") {
        if let Ok(path) = go_mod_module_path(s.as_bytes()) {
            prop_assert!(!path.is_empty());
        }
    }

    #[test]
    fn parse_info_never_panics_on_objects(v in version_like(), t in "\\PC{0,30}") {
        let body = serde_json::json!({"Version": v, "Time": t}).to_string();
        if let Ok(info) = parse_info(body.as_bytes()) {
            prop_assert!(is_valid_semver(&info.version));
        }
    }

    #[test]
    fn check_zip_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let m = ModulePath::new("example.com/m").unwrap();
        let v = Version::new("v1.0.0").unwrap();
        let _ = check_zip(Cursor::new(b), &m, &v, &ZipLimits::default());
    }

    #[test]
    fn check_zip_never_panics_on_mutated_zips(
        names in proptest::collection::vec("[a-zA-Z./]{1,10}", 0..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
    ) {
        let entries: Vec<(String, Vec<u8>)> =
            names.iter().map(|n| (format!("example.com/m@v1.0.0/{n}"), n.as_bytes().to_vec())).collect();
        let mut bytes = zip_of(&entries);
        for (i, byte) in flips {
            let at = i.index(bytes.len());
            bytes[at] = byte;
        }
        let m = ModulePath::new("example.com/m").unwrap();
        let v = Version::new("v1.0.0").unwrap();
        let _ = check_zip(Cursor::new(bytes), &m, &v, &ZipLimits::default());
    }

    #[test]
    fn escape_round_trips_for_valid_paths(p in module_path()) {
        let path = ModulePath::new(&p).unwrap();
        let esc = path.escaped();
        prop_assert!(!esc.bytes().any(|b| b.is_ascii_uppercase()));
        prop_assert_eq!(unescape_string(&esc), Some(p.clone()));
        prop_assert_eq!(ModulePath::from_escaped(&esc).unwrap(), path);
        prop_assert_eq!(escape_string(&p), esc);
    }

    #[test]
    fn escape_round_trips_for_versions(v in version_like()) {
        if let Ok(version) = Version::new(&v) {
            prop_assert_eq!(Version::from_escaped(&version.escaped()).unwrap(), version);
        }
    }

    #[test]
    fn canonical_is_canonical(v in version_like()) {
        if let Some(c) = canonical(&v) {
            prop_assert_eq!(canonical(&c), Some(c.clone()));
            prop_assert!(Version::new(&c).is_ok());
            prop_assert_eq!(compare(&v, &c), Ordering::Equal);
        } else {
            prop_assert!(!is_valid_semver(&v));
        }
    }

    #[test]
    fn compare_is_a_total_order(a in version_like(), b in version_like(), c in version_like()) {
        prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
        if compare(&a, &b) != Ordering::Greater && compare(&b, &c) != Ordering::Greater {
            prop_assert_ne!(compare(&a, &c), Ordering::Greater);
        }
        if compare(&a, &b) == Ordering::Equal {
            prop_assert_eq!(compare(&a, &c), compare(&b, &c));
        }
    }

    #[test]
    fn sorting_is_consistent(vs in proptest::collection::vec(version_like(), 0..20)) {
        let mut sorted = vs.clone();
        sorted.sort_by(|a, b| compare(a, b));
        for w in sorted.windows(2) {
            prop_assert_ne!(compare(&w[0], &w[1]), Ordering::Greater);
        }
        for i in 0..sorted.len() {
            for j in i + 1..sorted.len() {
                prop_assert_ne!(compare(&sorted[i], &sorted[j]), Ordering::Greater);
            }
        }
        let mut versions: Vec<Version> = vs.iter().filter_map(|v| Version::new(v).ok()).collect();
        versions.sort();
        for w in versions.windows(2) {
            prop_assert!(w[0] <= w[1]);
            prop_assert_ne!(compare(w[0].as_str(), w[1].as_str()), Ordering::Greater);
        }
    }
}
