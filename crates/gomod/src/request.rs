//! Parsing GOPROXY request paths (`/<module>/@v/list`, `/<module>/@v/<v>.info`,
//! `.mod`, `.zip`, `/<module>/@latest`).

use crate::error::{clip, Error, Result};
use crate::path::{check_elem, unescape, Kind, ModulePath};
use crate::semver;
use crate::version::{check_module_version, Version};

/// Longest raw request path accepted, in bytes.
pub const MAX_REQUEST_PATH: usize = 1024;

/// Longest version query (branch, tag, commit prefix) accepted, in bytes.
const MAX_QUERY: usize = 255;

/// The version part of an `.info` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionRef {
    /// A canonical version that matches the module path.
    Canonical(Version),
    /// Anything else the upstream may resolve: branch, tag, commit prefix, `v1.2`.
    Query(String),
}

/// One parsed GOPROXY request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    List { module: ModulePath },
    Info { module: ModulePath, version: VersionRef },
    Mod { module: ModulePath, version: Version },
    Zip { module: ModulePath, version: Version },
    Latest { module: ModulePath },
}

impl Request {
    pub fn module(&self) -> &ModulePath {
        match self {
            Request::List { module }
            | Request::Info { module, .. }
            | Request::Mod { module, .. }
            | Request::Zip { module, .. }
            | Request::Latest { module } => module,
        }
    }

    /// `"list"`, `"info"`, `"mod"`, `"zip"` or `"latest"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::List { .. } => "list",
            Request::Info { .. } => "info",
            Request::Mod { .. } => "mod",
            Request::Zip { .. } => "zip",
            Request::Latest { .. } => "latest",
        }
    }
}

/// Parses a raw URI path as received (leading `/`, no query, no base prefix):
/// percent-decodes once, splits at the last `/@v/` or a trailing `/@latest`,
/// case-decodes and validates module and version.
pub fn parse_request(raw_path: &str) -> Result<Request> {
    if raw_path.len() > MAX_REQUEST_PATH {
        return Err(bad(format!("path is {} bytes long, the limit is {MAX_REQUEST_PATH}", raw_path.len())));
    }
    let decoded = percent_decode(raw_path)?;
    let Some(rest) = decoded.strip_prefix('/') else {
        return Err(bad(format!("path {:?} does not start with '/'", clip(&decoded))));
    };
    if let Some(module) = rest.strip_suffix("/@latest") {
        return Ok(Request::Latest { module: parse_module(module)? });
    }
    if rest == "@latest" || rest.starts_with("@v/") {
        return Err(bad("empty module path before /@v/ or /@latest".into()));
    }
    let Some(at) = rest.rfind("/@v/") else {
        return Err(bad(format!("path {:?} has neither /@v/ nor a trailing /@latest", clip(rest))));
    };
    let module = parse_module(&rest[..at])?;
    parse_file(module, &rest[at + "/@v/".len()..])
}

fn bad(msg: String) -> Error {
    Error::InvalidRequest(msg)
}

/// RFC 3986 percent-decoding, once; `+` stays `+`. Rejects bad escapes, an
/// encoded `/`, NUL, `\` and anything that is not ASCII.
fn percent_decode(raw: &str) -> Result<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let byte = hex_pair(b.get(i + 1..i + 3)).ok_or_else(|| {
            let end = (i + 3).min(b.len());
            bad(format!("bad percent-escape {:?}", String::from_utf8_lossy(&b[i..end])))
        })?;
        if byte == b'/' {
            return Err(bad("encoded slash %2F in path".into()));
        }
        out.push(byte);
        i += 3;
    }
    let s = String::from_utf8(out).map_err(|_| bad("path is not valid UTF-8".into()))?;
    check_decoded_chars(&s)?;
    Ok(s)
}

fn hex_pair(pair: Option<&[u8]>) -> Option<u8> {
    let [hi, lo] = pair? else { return None };
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(*hi)? * 16 + digit(*lo)?) as u8)
}

fn check_decoded_chars(s: &str) -> Result<()> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii()) {
        return Err(bad(format!("non-ASCII character {c:?} in path")));
    }
    if s.contains('\0') {
        return Err(bad("NUL byte in path".into()));
    }
    if s.contains('\\') {
        return Err(bad("backslash in path".into()));
    }
    Ok(())
}

fn parse_module(escaped: &str) -> Result<ModulePath> {
    if escaped.is_empty() {
        return Err(bad("empty module path".into()));
    }
    ModulePath::from_escaped(escaped)
}

/// What follows `/@v/`: `list` or `<escaped version>.info|.mod|.zip`.
fn parse_file(module: ModulePath, file: &str) -> Result<Request> {
    if file == "list" {
        return Ok(Request::List { module });
    }
    if file.is_empty() {
        return Err(bad("nothing after /@v/ (want list, <version>.info, .mod or .zip)".into()));
    }
    if file.contains('/') {
        return Err(bad(format!("{:?} after /@v/ contains a '/'", clip(file))));
    }
    let Some((escaped, ext)) = file.rsplit_once('.').filter(|(_, e)| matches!(*e, "info" | "mod" | "zip")) else {
        return Err(bad(format!("unknown file {:?} after /@v/ (want list, <version>.info, .mod or .zip)", clip(file))));
    };
    if escaped.is_empty() {
        return Err(bad(format!("empty version in {file:?}")));
    }
    if ext == "info" {
        let version = parse_info_version(&module, escaped)?;
        return Ok(Request::Info { module, version });
    }
    let version = Version::from_escaped(escaped)?;
    check_module_version(&module, &version)?;
    Ok(if ext == "mod" { Request::Mod { module, version } } else { Request::Zip { module, version } })
}

fn parse_info_version(module: &ModulePath, escaped: &str) -> Result<VersionRef> {
    let raw = unescape(escaped).map_err(|reason| Error::version(escaped, format!("has a bad case-encoding: {reason}")))?;
    if semver::canonical(&raw).as_deref() == Some(raw.as_str()) {
        let version = Version::new(&raw)?;
        match check_module_version(module, &version) {
            Ok(()) => return Ok(VersionRef::Canonical(version)),
            // `go get github.com/docker/docker@v24.0.7` asks for `v24.0.7.info`
            // and expects upstream to resolve it to `v24.0.7+incompatible`.
            Err(_) if may_resolve_to_incompatible(module, &version) => {}
            Err(e) => return Err(e),
        }
    }
    check_query(&raw)?;
    Ok(VersionRef::Query(raw))
}

/// A version of major 2 or higher on a path without a major suffix names an
/// `+incompatible` version, which only upstream can resolve.
fn may_resolve_to_incompatible(module: &ModulePath, version: &Version) -> bool {
    module.major_suffix().is_empty() && version.major() >= 2 && !version.is_incompatible()
}

/// A version query must be one safe file-name element.
fn check_query(q: &str) -> Result<()> {
    let reason = if q.is_empty() {
        "is empty".to_string()
    } else if q.len() > MAX_QUERY {
        format!("is {} bytes long, the limit for a version query is {MAX_QUERY}", q.len())
    } else if matches!(q, "latest" | "upgrade" | "patch") {
        "is a query keyword, not a version; use <module>/@latest".to_string()
    } else if q.contains("..") {
        "contains \"..\"".to_string()
    } else if let Some(c) = q.chars().find(|&c| !query_char_ok(c)) {
        format!("contains {c:?}; a version query may only use letters, digits and -._~+")
    } else if let Err(why) = check_elem(q, Kind::File) {
        format!("is not a valid file name: {why}")
    } else {
        return Ok(());
    };
    Err(Error::version(q, reason))
}

fn query_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str) -> ModulePath {
        ModulePath::new(p).unwrap()
    }

    fn v(s: &str) -> Version {
        Version::new(s).unwrap()
    }

    #[test]
    fn valid_requests() {
        let cases: Vec<(&str, Request)> = vec![
            ("/golang.org/x/text/@v/list", Request::List { module: m("golang.org/x/text") }),
            ("/golang.org/x/text/@latest", Request::Latest { module: m("golang.org/x/text") }),
            (
                "/example.com/%21upper/mod/@v/v1.1.0-%21r%21c1.info",
                Request::Info { module: m("example.com/Upper/mod"), version: VersionRef::Canonical(v("v1.1.0-RC1")) },
            ),
            (
                "/example.com/!upper/mod/@v/v1.1.0-!r!c1.info",
                Request::Info { module: m("example.com/Upper/mod"), version: VersionRef::Canonical(v("v1.1.0-RC1")) },
            ),
            (
                "/github.com/!azure/azure-sdk-for-go/@v/v1.0.0.mod",
                Request::Mod { module: m("github.com/Azure/azure-sdk-for-go"), version: v("v1.0.0") },
            ),
            ("/github.com/!burnt!sushi/toml/@v/v1.2.3.zip", Request::Zip { module: m("github.com/BurntSushi/toml"), version: v("v1.2.3") }),
            ("/github.com/%21burnt%21sushi/toml/@v/list", Request::List { module: m("github.com/BurntSushi/toml") }),
            (
                "/example.com/mod/@v/v2.0.0+incompatible.zip",
                Request::Zip { module: m("example.com/mod"), version: v("v2.0.0+incompatible") },
            ),
            (
                "/example.com/mod/@v/v2.0.0%2Bincompatible.mod",
                Request::Mod { module: m("example.com/mod"), version: v("v2.0.0+incompatible") },
            ),
            (
                "/example.com/mod/@v/v0.0.0-20191109021931-daa7c04131f5.mod",
                Request::Mod { module: m("example.com/mod"), version: v("v0.0.0-20191109021931-daa7c04131f5") },
            ),
            (
                "/example.com/mod/@v/v1.2.3-pre.0.20191109021931-daa7c04131f5.info",
                Request::Info {
                    module: m("example.com/mod"),
                    version: VersionRef::Canonical(v("v1.2.3-pre.0.20191109021931-daa7c04131f5")),
                },
            ),
            (
                "/example.com/mod/@v/v1.2.4-0.20191109021931-daa7c04131f5.zip",
                Request::Zip { module: m("example.com/mod"), version: v("v1.2.4-0.20191109021931-daa7c04131f5") },
            ),
            (
                "/example.com/mod/@v/master.info",
                Request::Info { module: m("example.com/mod"), version: VersionRef::Query("master".into()) },
            ),
            ("/example.com/mod/@v/v1.2.info", Request::Info { module: m("example.com/mod"), version: VersionRef::Query("v1.2".into()) }),
            (
                "/example.com/mod/@v/v1.2.3+meta.info",
                Request::Info { module: m("example.com/mod"), version: VersionRef::Query("v1.2.3+meta".into()) },
            ),
            (
                "/example.com/mod/@v/daa7c041.info",
                Request::Info { module: m("example.com/mod"), version: VersionRef::Query("daa7c041".into()) },
            ),
            (
                "/example.com/mod/@v/!feature-!x.info",
                Request::Info { module: m("example.com/mod"), version: VersionRef::Query("Feature-X".into()) },
            ),
            (
                "/example.com/mod/v2/@v/v2.1.0.info",
                Request::Info { module: m("example.com/mod/v2"), version: VersionRef::Canonical(v("v2.1.0")) },
            ),
            ("/gopkg.in/yaml.v3/@v/v3.0.1.mod", Request::Mod { module: m("gopkg.in/yaml.v3"), version: v("v3.0.1") }),
            (
                "/gopkg.in/check.v1/@v/v0.0.0-20161208181325-20d25e280405.mod",
                Request::Mod { module: m("gopkg.in/check.v1"), version: v("v0.0.0-20161208181325-20d25e280405") },
            ),
            ("/gopkg.in/check.v0/@v/list", Request::List { module: m("gopkg.in/check.v0") }),
            ("/gopkg.in/src-d/go-git.v4/@v/list", Request::List { module: m("gopkg.in/src-d/go-git.v4") }),
            ("/example.com/a_b-c.d~e/@v/list", Request::List { module: m("example.com/a_b-c.d~e") }),
            ("/example.com/foo~bar/@latest", Request::Latest { module: m("example.com/foo~bar") }),
            ("/example.com/a..b/@v/list", Request::List { module: m("example.com/a..b") }),
            ("/example.com/%61/@v/list", Request::List { module: m("example.com/a") }),
            ("/example.com/mod/@v/list.info", Request::Info { module: m("example.com/mod"), version: VersionRef::Query("list".into()) }),
            (
                "/github.com/docker/docker/@v/v24.0.7.info",
                Request::Info { module: m("github.com/docker/docker"), version: VersionRef::Query("v24.0.7".into()) },
            ),
            (
                "/example.com/mod/@v/v2.0.0.info",
                Request::Info { module: m("example.com/mod"), version: VersionRef::Query("v2.0.0".into()) },
            ),
            (
                "/example.com/mod/@v/v3.1.0-rc.1.info",
                Request::Info { module: m("example.com/mod"), version: VersionRef::Query("v3.1.0-rc.1".into()) },
            ),
        ];
        assert!(cases.len() >= 25);
        for (path, want) in cases {
            assert_eq!(parse_request(path), Ok(want.clone()), "{path}");
            assert_eq!(parse_request(path).unwrap().module(), want.module());
        }
    }

    #[test]
    fn invalid_requests() {
        let long = format!("/example.com/{}/@v/list", "a".repeat(1100));
        let long_query = format!("/example.com/mod/@v/{}.info", "a".repeat(300));
        let cases: Vec<(&str, &str)> = vec![
            // 8.1 path vectors
            ("/gopkg.in/yaml/@v/list", "invalid version"),
            ("/example.com/mod/v1/@v/list", "invalid version"),
            ("/example.com/mod/v0/@v/list", "invalid version"),
            ("/example.com/mod/v02/@v/list", "invalid version"),
            ("/example.com/mod/v2.1/@v/list", "invalid version"),
            ("/Example.com/mod/@v/list", "raw uppercase"),
            ("/!example.com/mod/@v/list", "invalid char 'E' in first path element"),
            ("/example/mod/@v/list", "missing dot in first path element"),
            ("/-example.com/mod/@v/list", "leading dash"),
            ("/example.com/.hidden/@v/list", "leading dot in path element"),
            ("/example.com/a./@v/list", "trailing dot in path element"),
            ("/example.com/con/@v/list", "Windows"),
            ("/example.com/aux.go/@v/list", "Windows"),
            ("/example.com/foo~1/@v/list", "trailing tilde and digits"),
            ("/example.com/a+b/@v/list", "invalid char '+'"),
            ("/example.com/a%20b/@v/list", "invalid char ' '"),
            ("/example.com/a@b/@v/list", "invalid char '@'"),
            ("/example.com/%C3%BCmlaut/@v/list", "non-ASCII"),
            ("/example.com/ümlaut/@v/list", "non-ASCII"),
            ("/example.com//x/@v/list", "double slash"),
            ("/example.com/x//@v/list", "trailing slash"),
            // 8.1 unescape vectors
            ("/github.com/!Azure/x/@v/list", "'!' must be followed"),
            ("/github.com/Azure/x/@v/list", "raw uppercase"),
            ("/github.com/!!azure/x/@v/list", "'!' must be followed"),
            ("/github.com/azure!/@v/list", "trailing '!'"),
            ("/github.com/!1x/@v/list", "'!' must be followed"),
            // 8.2 version vectors in .mod/.zip
            ("/example.com/mod/@v/v1.2.mod", "is not canonical (canonical form is v1.2.0)"),
            ("/example.com/mod/@v/v1.2.3+meta.zip", "is not canonical (canonical form is v1.2.3)"),
            ("/example.com/mod/@v/1.2.3.mod", "must start with \"v\""),
            ("/example.com/mod/@v/!v1.2.3.zip", "must start with \"v\""),
            ("/example.com/mod/@v/V1.2.3.info", "raw uppercase"),
            ("/example.com/mod/@v/v01.2.3.mod", "not a semantic version"),
            ("/example.com/mod/@v/v1.2.3-01.zip", "not a semantic version"),
            ("/example.com/mod/@v/v1.2.3-.mod", "not a semantic version"),
            ("/example.com/mod/@v/v1.2.3.4.mod", "not a semantic version"),
            ("/example.com/mod/@v/v1.2.3-RC1.mod", "raw uppercase"),
            ("/example.com/mod/@v/master.zip", "not a semantic version"),
            // 8.2 module.Check vectors
            ("/example.com/mod/@v/v2.0.0.mod", "should be v0 or v1, not v2"),
            ("/example.com/mod/v2/@v/v3.0.0.zip", "should be v2, not v3"),
            ("/gopkg.in/yaml.v2/@v/v3.0.0.mod", "should be v2, not v3"),
            ("/example.com/mod/v2/@v/v3.0.0.info", "should be v2, not v3"),
            ("/gopkg.in/yaml.v2/@v/v3.0.0.info", "should be v2, not v3"),
            ("/example.com/mod/v2/@v/v2.0.0+incompatible.info", "+incompatible is not allowed"),
            ("/example.com/mod/@v/v1.0.0+incompatible.info", "+incompatible"),
            // request shape
            ("/example.com/mod/@v/", "nothing after /@v/"),
            ("/example.com/mod/@v/.info", "empty version"),
            ("/example.com/mod/@v/v1.0.0.tar", "unknown file"),
            ("/example.com/mod/@v/v1.0.0", "unknown file"),
            ("/example.com/mod/@v/lists", "unknown file"),
            ("/example.com/mod/@v/v1.0.0.info/x", "contains a '/'"),
            ("/example.com/mod", "neither /@v/ nor"),
            ("/example.com/mod/@latest/x", "neither /@v/ nor"),
            ("/example.com/mod/@v", "neither /@v/ nor"),
            ("example.com/mod/@v/list", "does not start with '/'"),
            ("/@v/list", "empty module path"),
            ("/@latest", "empty module path"),
            ("//@v/list", "empty module path"),
            ("/example.com/../@v/list", "invalid path element \"..\""),
            ("/example.com/%2e%2e/@v/list", "invalid path element \"..\""),
            ("/example.com/%2E%2E/x/@v/list", "invalid path element \"..\""),
            ("/example.com%2Fmod/@v/list", "encoded slash"),
            ("/example.com/mod%2f@v/list", "encoded slash"),
            ("/example.com/mod/@v/v1.0.0%2", "bad percent-escape"),
            ("/example.com/mod/@v/v1.0.0%zz.mod", "bad percent-escape"),
            ("/example.com/m%00od/@v/list", "NUL"),
            ("/example.com/m%5Cod/@v/list", "backslash"),
            ("/example.com/m\\od/@v/list", "backslash"),
            ("/example.com/%FF/@v/list", "UTF-8"),
            (long.as_str(), "the limit is 1024"),
            // queries
            ("/example.com/mod/@v/latest.info", "use <module>/@latest"),
            ("/example.com/mod/@v/upgrade.info", "use <module>/@latest"),
            ("/example.com/mod/@v/patch.info", "use <module>/@latest"),
            ("/example.com/mod/@v/%2e%2e.info", "contains \"..\""),
            ("/example.com/mod/@v/a..b.info", "contains \"..\""),
            ("/example.com/mod/@v/feat%3Ax.info", "contains ':'"),
            ("/example.com/mod/@v/a%25b.info", "contains '%'"),
            ("/example.com/mod/@v/a%20b.info", "contains ' '"),
            ("/example.com/mod/@v/a%0Ab.info", "contains '\\n'"),
            ("/example.com/mod/@v/..info", "is not a valid file name"),
            ("/example.com/mod/@v/x..info", "is not a valid file name: trailing dot"),
            ("/example.com/mod/@v/con.info", "Windows"),
            (long_query.as_str(), "limit for a version query is 255"),
        ];
        assert!(cases.len() >= 30);
        for (path, want) in cases {
            let err = parse_request(path).expect_err(path);
            let msg = err.to_string();
            assert!(msg.contains(want), "{path}: want {want:?} in {msg:?}");
            assert!(!msg.contains('\n'), "{msg:?}");
            assert!(msg.len() < 700, "{path}: message too long: {}", msg.len());
        }
    }

    #[test]
    fn kinds() {
        let kinds: Vec<&str> = [
            "/example.com/m/@v/list",
            "/example.com/m/@v/x.info",
            "/example.com/m/@v/v1.0.0.mod",
            "/example.com/m/@v/v1.0.0.zip",
            "/example.com/m/@latest",
        ]
        .iter()
        .map(|p| parse_request(p).unwrap().kind())
        .collect();
        assert_eq!(kinds, ["list", "info", "mod", "zip", "latest"]);
    }

    #[test]
    fn splits_at_last_at_v() {
        // the module part may not contain "@v", so the last /@v/ is the split
        let err = parse_request("/example.com/@v/x/@v/list").unwrap_err().to_string();
        assert!(err.contains("invalid char '@'"), "{err}");
    }
}
