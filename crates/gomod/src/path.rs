//! Module paths: x/mod `CheckPath`, `CheckFilePath`, `SplitPathVersion` and
//! the `!x` case-encoding of `EscapePath` / `UnescapePath`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Which x/mod path rules apply.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Module,
    File,
}

/// Windows reserved device names (compared case-insensitively).
const WINDOWS_RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2", "LPT3", "LPT4",
    "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A decoded module path that passed x/mod `CheckPath`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModulePath(String);

impl ModulePath {
    /// Validates a raw (decoded) module path.
    pub fn new(raw: &str) -> Result<Self> {
        check_module_path(raw).map_err(|reason| Error::path(raw, reason.to_string()))?;
        Ok(ModulePath(raw.to_string()))
    }

    /// Case-decodes (`!x` → `X`) and validates an escaped module path.
    pub fn from_escaped(escaped: &str) -> Result<Self> {
        let raw = unescape(escaped).map_err(|reason| Error::path(escaped, format!("bad case-encoding: {reason}")))?;
        Self::new(&raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-encoded form used in proxy URLs and storage keys.
    pub fn escaped(&self) -> String {
        escape_string(&self.0)
    }

    /// The major-version suffix: `""`, `"/v2"`, or for gopkg.in `".v1"` / `".v1-unstable"`.
    pub fn major_suffix(&self) -> &str {
        split_path_version(&self.0).map_or("", |(_, major)| major)
    }
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ModulePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for ModulePath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl serde::Serialize for ModulePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ModulePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Case-encodes `s`: every ASCII uppercase letter `X` becomes `!x`, nothing
/// else changes. Injective only for inputs without `!` (all valid paths and
/// versions).
pub fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`escape_string`]; `None` for non-ASCII, raw uppercase, `!` not
/// followed by `a`–`z`, or a trailing `!`.
pub fn unescape_string(s: &str) -> Option<String> {
    unescape(s).ok()
}

/// [`unescape_string`] with the reason for a failure.
pub(crate) fn unescape(escaped: &str) -> std::result::Result<String, &'static str> {
    let mut out = String::with_capacity(escaped.len());
    let mut bang = false;
    for c in escaped.chars() {
        if !c.is_ascii() {
            return Err("non-ASCII character");
        }
        if bang {
            if !c.is_ascii_lowercase() {
                return Err("'!' must be followed by a lowercase letter a-z");
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return Err("raw uppercase letter (uppercase must be written as '!' + lowercase)");
        } else {
            out.push(c);
        }
    }
    if bang {
        return Err("trailing '!'");
    }
    Ok(out)
}

/// The x/mod path rule a module or file path breaks; becomes the reason of
/// an [`Error`] that names the path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathRule {
    #[error("empty string")]
    Empty,
    #[error("leading dash")]
    LeadingDash,
    #[error("double slash")]
    DoubleSlash,
    #[error("trailing slash")]
    TrailingSlash,
    #[error("empty path element")]
    EmptyElement,
    #[error("invalid path element {0:?}")]
    DotsElement(String),
    #[error("leading dot in path element")]
    LeadingDot,
    #[error("trailing dot in path element")]
    TrailingDot,
    #[error("invalid char {0:?}")]
    Char(char),
    #[error("{0:?} disallowed as path element component on Windows")]
    WindowsReserved(String),
    #[error("trailing tilde and digits in path element")]
    TildeDigits,
    #[error("missing dot in first path element")]
    FirstElementDot,
    #[error("invalid char {0:?} in first path element")]
    FirstElementChar(char),
    #[error("invalid version (a major version suffix must be /vN with N >= 2 and no leading zero; gopkg.in paths must end in .vN)")]
    MajorSuffix,
}

/// x/mod `CheckPath`.
pub(crate) fn check_module_path(path: &str) -> std::result::Result<(), PathRule> {
    check_path(path, Kind::Module)?;
    let first = path.split('/').next().unwrap_or(path);
    if !first.contains('.') {
        return Err(PathRule::FirstElementDot);
    }
    if let Some(c) = first.chars().find(|&c| !first_elem_ok(c)) {
        return Err(PathRule::FirstElementChar(c));
    }
    if split_path_version(path).is_none() {
        return Err(PathRule::MajorSuffix);
    }
    Ok(())
}

/// x/mod `CheckFilePath` for a file name inside a module zip.
pub(crate) fn check_file_path(path: &str) -> std::result::Result<(), PathRule> {
    check_path(path, Kind::File)
}

/// x/mod `checkPath` (without the module-only first-element rules).
fn check_path(path: &str, kind: Kind) -> std::result::Result<(), PathRule> {
    if path.is_empty() {
        return Err(PathRule::Empty);
    }
    if path.starts_with('-') && kind != Kind::File {
        return Err(PathRule::LeadingDash);
    }
    if path.contains("//") {
        return Err(PathRule::DoubleSlash);
    }
    if path.ends_with('/') {
        return Err(PathRule::TrailingSlash);
    }
    path.split('/').try_for_each(|elem| check_elem(elem, kind))
}

/// x/mod `checkElem`.
pub(crate) fn check_elem(elem: &str, kind: Kind) -> std::result::Result<(), PathRule> {
    if elem.is_empty() {
        return Err(PathRule::EmptyElement);
    }
    if elem.bytes().all(|b| b == b'.') {
        return Err(PathRule::DotsElement(elem.to_string()));
    }
    if elem.starts_with('.') && kind == Kind::Module {
        return Err(PathRule::LeadingDot);
    }
    if elem.ends_with('.') {
        return Err(PathRule::TrailingDot);
    }
    if let Some(c) = elem.chars().find(|&c| !char_ok(c, kind)) {
        return Err(PathRule::Char(c));
    }
    let short = elem.find('.').map_or(elem, |i| &elem[..i]);
    if WINDOWS_RESERVED.iter().any(|bad| bad.eq_ignore_ascii_case(short)) {
        return Err(PathRule::WindowsReserved(short.to_string()));
    }
    if kind == Kind::Module && has_tilde_digits(short) {
        return Err(PathRule::TildeDigits);
    }
    Ok(())
}

/// Windows short names such as `FOO~1`.
fn has_tilde_digits(short: &str) -> bool {
    match short.rfind('~') {
        Some(t) => {
            let suffix = &short[t + 1..];
            !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn char_ok(c: char, kind: Kind) -> bool {
    match kind {
        Kind::Module => c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'),
        Kind::File => file_char_ok(c),
    }
}

/// x/mod `fileNameOK`. Go accepts any `unicode.IsLetter` beyond ASCII; std has
/// no general-category lookup, so this uses alphabetic-and-not-numeric, which
/// also admits a few combining marks Go rejects.
fn file_char_ok(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || "!#$%&()+,-.=@[]^_{}~ ".contains(c);
    }
    c.is_alphabetic() && !c.is_numeric()
}

fn first_elem_ok(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'
}

/// x/mod `SplitPathVersion`: `Some((prefix, major_suffix))`, `None` when the
/// final element is a malformed major version suffix.
pub(crate) fn split_path_version(path: &str) -> Option<(&str, &str)> {
    if path.starts_with("gopkg.in/") {
        return split_gopkg_in(path);
    }
    let b = path.as_bytes();
    let mut i = b.len();
    let mut dot = false;
    while i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
        dot |= b[i - 1] == b'.';
        i -= 1;
    }
    if i <= 1 || i == b.len() || b[i - 1] != b'v' || b[i - 2] != b'/' {
        return Some((path, ""));
    }
    let (prefix, major) = path.split_at(i - 2);
    if dot || major.len() <= 2 || major.as_bytes()[2] == b'0' || major == "/v1" {
        return None;
    }
    Some((prefix, major))
}

/// x/mod `splitGopkgIn`: gopkg.in paths must end in `.vN[-unstable]`.
fn split_gopkg_in(path: &str) -> Option<(&str, &str)> {
    let b = path.as_bytes();
    let mut i = b.len();
    if path.ends_with("-unstable") {
        i -= "-unstable".len();
    }
    while i > 0 && b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i <= 1 || b[i - 1] != b'v' || b[i - 2] != b'.' {
        return None;
    }
    let (prefix, major) = path.split_at(i - 2);
    if major.len() <= 2 || (major.as_bytes()[2] == b'0' && major != ".v0") {
        return None;
    }
    Some((prefix, major))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_vectors() {
        for (raw, esc) in [
            ("github.com/Azure/azure-sdk-for-go", "github.com/!azure/azure-sdk-for-go"),
            ("github.com/BurntSushi/toml", "github.com/!burnt!sushi/toml"),
            ("golang.org/x/text", "golang.org/x/text"),
        ] {
            let p = ModulePath::new(raw).unwrap();
            assert_eq!(p.escaped(), esc);
            assert_eq!(ModulePath::from_escaped(esc).unwrap(), p);
        }
    }

    #[test]
    fn valid_paths() {
        for p in [
            "gopkg.in/yaml.v3",
            "gopkg.in/check.v0",
            "gopkg.in/src-d/go-git.v4",
            "gopkg.in/yaml.v2-unstable",
            "example.com/a_b-c.d~e",
            "example.com/foo~bar",
            "example.com/a..b",
            "example.com/mod/v2",
            "example.com/v2",
            "example.com",
            "example.com/con1",
            "example.com/foo~1a",
            "example.com/v",
        ] {
            assert!(ModulePath::new(p).is_ok(), "{p} should be valid: {:?}", ModulePath::new(p));
        }
    }

    #[test]
    fn invalid_paths() {
        for (p, why) in [
            ("gopkg.in/yaml", "invalid version"),
            ("gopkg.in/yaml.v01", "invalid version"),
            ("example.com/mod/v1", "invalid version"),
            ("example.com/mod/v0", "invalid version"),
            ("example.com/mod/v02", "invalid version"),
            ("example.com/mod/v2.1", "invalid version"),
            ("Example.com/mod", "invalid char 'E' in first path element"),
            ("example/mod", "missing dot in first path element"),
            ("-example.com/mod", "leading dash"),
            ("example.com/.hidden", "leading dot in path element"),
            ("example.com/a.", "trailing dot in path element"),
            ("example.com/con", "Windows"),
            ("example.com/aux.go", "Windows"),
            ("example.com/LPT9", "Windows"),
            ("example.com/foo~1", "trailing tilde and digits"),
            ("example.com/foo~1.x", "trailing tilde and digits"),
            ("example.com/a+b", "invalid char '+'"),
            ("example.com/a b", "invalid char ' '"),
            ("example.com/a@b", "invalid char '@'"),
            ("example.com/ümlaut", "invalid char 'ü'"),
            ("example.com//x", "double slash"),
            ("example.com/x/", "trailing slash"),
            ("example.com/..", "invalid path element \"..\""),
            ("/example.com", "empty path element"),
            ("", "empty string"),
            ("exa_mple.com/x", "invalid char '_' in first path element"),
        ] {
            let err = ModulePath::new(p).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(why), "{p}: got {msg}");
            assert!(msg.starts_with("invalid module path"), "{msg}");
            assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn display_example() {
        let err = ModulePath::new("example.com/.x").unwrap_err();
        assert_eq!(err.to_string(), r#"invalid module path "example.com/.x": leading dot in path element"#);
    }

    #[test]
    fn unescape_vectors() {
        assert_eq!(unescape_string("github.com/!azure/x").as_deref(), Some("github.com/Azure/x"));
        for bad in
            ["github.com/!Azure/x", "github.com/Azure/x", "github.com/!!azure/x", "github.com/azure!", "github.com/!1x", "github.com/ü"]
        {
            assert_eq!(unescape_string(bad), None, "{bad}");
            assert!(ModulePath::from_escaped(bad).is_err(), "{bad}");
        }
        assert_eq!(escape_string("v1.2.3-RC1"), "v1.2.3-!r!c1");
        assert_eq!(escape_string("V1.2.3"), "!v1.2.3");
    }

    #[test]
    fn major_suffixes() {
        let cases = [
            ("example.com/mod", ""),
            ("example.com/mod/v2", "/v2"),
            ("gopkg.in/yaml.v3", ".v3"),
            ("gopkg.in/yaml.v2-unstable", ".v2-unstable"),
        ];
        for (p, m) in cases {
            assert_eq!(ModulePath::new(p).unwrap().major_suffix(), m, "{p}");
        }
    }

    #[test]
    fn file_paths() {
        for ok in ["a/b.go", "-x", ".github/x", "ü/x", "a b/c!#$%&()+,-.=@[]^_{}~", "foo~1"] {
            assert!(check_file_path(ok).is_ok(), "{ok}: {:?}", check_file_path(ok));
        }
        for bad in ["a/", "a//b", "a/.", "..", "a.", "a:b", "a\\b", "a*b", "a\"b", "nul.txt", "a\nb"] {
            assert!(check_file_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let p = ModulePath::new("github.com/BurntSushi/toml").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#""github.com/BurntSushi/toml""#);
        assert_eq!(serde_json::from_str::<ModulePath>(&json).unwrap(), p);
        assert!(serde_json::from_str::<ModulePath>(r#""example/x""#).is_err());
    }
}
