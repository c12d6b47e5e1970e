//! Go's semantic versions (x/mod `semver`): mandatory `v`, `v1` and `v1.2`
//! shorthands, no leading zeros, Go's precedence order.

use std::cmp::Ordering;

/// The parts of a valid version; `short` is what `v1` / `v1.2` lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub major: &'a str,
    pub minor: &'a str,
    pub patch: &'a str,
    pub short: &'static str,
    pub prerelease: &'a str,
    pub build: &'a str,
}

/// x/mod `semver.parse`.
pub(crate) fn parse(v: &str) -> Option<Parsed<'_>> {
    let rest = v.strip_prefix('v')?;
    let (major, rest) = parse_int(rest)?;
    let mut p = Parsed { major, minor: "0", patch: "0", short: "", prerelease: "", build: "" };
    if rest.is_empty() {
        p.short = ".0.0";
        return Some(p);
    }
    let (minor, rest) = parse_int(rest.strip_prefix('.')?)?;
    p.minor = minor;
    if rest.is_empty() {
        p.short = ".0";
        return Some(p);
    }
    let (patch, mut rest) = parse_int(rest.strip_prefix('.')?)?;
    p.patch = patch;
    if rest.starts_with('-') {
        (p.prerelease, rest) = parse_prerelease(rest)?;
    }
    if rest.starts_with('+') {
        (p.build, rest) = parse_build(rest)?;
    }
    rest.is_empty().then_some(p)
}

/// A decimal number without leading zeros, and what follows it.
fn parse_int(s: &str) -> Option<(&str, &str)> {
    let end = s.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 || (end > 1 && s.starts_with('0')) {
        return None;
    }
    Some(s.split_at(end))
}

/// `-ident(.ident)*` up to `+` or the end; numeric identifiers without leading zeros.
fn parse_prerelease(s: &str) -> Option<(&str, &str)> {
    let end = s.find('+').unwrap_or(s.len());
    let (pre, rest) = s.split_at(end);
    let idents = pre.strip_prefix('-')?;
    idents.split('.').all(|id| is_ident(id) && !is_bad_num(id)).then_some((pre, rest))
}

/// `+ident(.ident)*` to the end.
fn parse_build(s: &str) -> Option<(&str, &str)> {
    let idents = s.strip_prefix('+')?;
    idents.split('.').all(is_ident).then_some((s, ""))
}

fn is_ident(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_num(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

fn is_bad_num(id: &str) -> bool {
    is_num(id) && id.len() > 1 && id.starts_with('0')
}

/// `semver.IsValid`.
pub fn is_valid_semver(v: &str) -> bool {
    parse(v).is_some()
}

/// x/mod `module.CanonicalVersion`: `semver.Canonical` (shorthands expanded,
/// build metadata dropped) except that `+incompatible` is kept. `None` if invalid.
pub fn canonical(v: &str) -> Option<String> {
    let p = parse(v)?;
    let mut out = if !p.build.is_empty() { v[..v.len() - p.build.len()].to_string() } else { format!("{v}{}", p.short) };
    if p.build == "+incompatible" {
        out.push_str("+incompatible");
    }
    Some(out)
}

/// `semver.Compare`: invalid versions are equal to each other and lower than
/// every valid one; build metadata is ignored.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare_parsed(&x, &y),
    }
}

fn compare_parsed(x: &Parsed<'_>, y: &Parsed<'_>) -> Ordering {
    compare_int(x.major, y.major)
        .then_with(|| compare_int(x.minor, y.minor))
        .then_with(|| compare_int(x.patch, y.patch))
        .then_with(|| compare_prerelease(x.prerelease, y.prerelease))
}

/// Numbers without leading zeros: longer is larger, then by digits.
fn compare_int(x: &str, y: &str) -> Ordering {
    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
}

/// A release sorts after all its pre-releases; identifiers compare pairwise.
fn compare_prerelease(x: &str, y: &str) -> Ordering {
    match (x.is_empty(), y.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    let xs = x[1..].split('.');
    let ys = y[1..].split('.');
    let mut pairs = xs.zip(ys);
    let first_diff = pairs.find_map(|(a, b)| {
        let c = compare_ident(a, b);
        (c != Ordering::Equal).then_some(c)
    });
    first_diff.unwrap_or_else(|| x.split('.').count().cmp(&y.split('.').count()))
}

/// Numeric identifiers sort before alphanumeric ones.
fn compare_ident(a: &str, b: &str) -> Ordering {
    match (is_num(a), is_num(b)) {
        (true, true) => compare_int(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

/// A one-line reason why `v` is not valid semver (for error messages).
pub(crate) fn invalid_reason(v: &str) -> &'static str {
    if v.is_empty() {
        "is empty"
    } else if !v.starts_with('v') {
        "is not a semantic version: it must start with \"v\""
    } else {
        "is not a semantic version (want vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]], \
         numbers without leading zeros)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_and_canonical_vectors() {
        let cases: [(&str, Option<&str>); 13] = [
            ("v1.2.3", Some("v1.2.3")),
            ("v1.2", Some("v1.2.0")),
            ("v1", Some("v1.0.0")),
            ("v1.2.3-RC1", Some("v1.2.3-RC1")),
            ("v1.2.3+meta", Some("v1.2.3")),
            ("v2.0.0+incompatible", Some("v2.0.0+incompatible")),
            ("v0.0.0-20191109021931-daa7c04131f5", Some("v0.0.0-20191109021931-daa7c04131f5")),
            ("v1.2.3-pre.0.20191109021931-daa7c04131f5", Some("v1.2.3-pre.0.20191109021931-daa7c04131f5")),
            ("v1.2.4-0.20191109021931-daa7c04131f5", Some("v1.2.4-0.20191109021931-daa7c04131f5")),
            ("v1.2.3-0", Some("v1.2.3-0")),
            ("v1.2.3-pre+build.1", Some("v1.2.3-pre")),
            ("v1.2.3-a-b.c-d", Some("v1.2.3-a-b.c-d")),
            ("v0.0.0", Some("v0.0.0")),
        ];
        for (v, c) in cases {
            assert!(is_valid_semver(v), "{v}");
            assert_eq!(canonical(v).as_deref(), c, "{v}");
        }
        for v in [
            "1.2.3",
            "V1.2.3",
            "v01.2.3",
            "v1.2.3-01",
            "v1.2.3-",
            "v1.2.3.4",
            "",
            "v",
            "v1.",
            "v1.2.",
            "v1-pre",
            "v1.2-pre",
            "v1.2+meta",
            "v1.2.3+",
            "v1.2.3-a..b",
            "v1.2.3+a..b",
            "v1.02.3",
            "v1.2.03",
            "v1.2.3-ü",
            "v1.2.3 ",
        ] {
            assert!(!is_valid_semver(v), "{v}");
            assert_eq!(canonical(v), None, "{v}");
        }
    }

    #[test]
    fn ordering() {
        let sorted = [
            "bad",
            "v0.0.0",
            "v0.0.1",
            "v0.1.0",
            "v1.0.0-0",
            "v1.0.0-1",
            "v1.0.0-9",
            "v1.0.0-10",
            "v1.0.0-a",
            "v1.0.0-alpha",
            "v1.0.0-alpha.1",
            "v1.0.0-alpha.beta",
            "v1.0.0-beta",
            "v1.0.0-beta.2",
            "v1.0.0-beta.11",
            "v1.0.0-rc.1",
            "v1.0.0",
            "v1.2.0",
            "v1.10.0",
            "v2.0.0",
            "v10.0.0",
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(compare(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        assert_eq!(compare("v1.2", "v1.2.0"), Ordering::Equal);
        assert_eq!(compare("v1.2.3+a", "v1.2.3+b"), Ordering::Equal);
        assert_eq!(compare("bad", "worse"), Ordering::Equal);
        assert_eq!(compare("v2.0.0+incompatible", "v2.0.0"), Ordering::Equal);
    }
}
