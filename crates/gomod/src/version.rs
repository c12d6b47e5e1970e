//! Canonical module versions, pseudo-versions and the path/major match of
//! x/mod `module.Check`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::path::{unescape, ModulePath};
use crate::semver;

/// A canonical Go version (`vX.Y.Z[-PRE][+incompatible]`). Ordered like
/// `semver.Compare`, ties (`v2.0.0` vs `v2.0.0+incompatible`) broken by string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// Accepts only canonical versions; a valid but non-canonical one is an
    /// error naming its canonical form.
    pub fn new(s: &str) -> Result<Self> {
        match semver::canonical(s) {
            None => Err(Error::version(s, semver::invalid_reason(s))),
            Some(c) if c == s => Ok(Version(c)),
            Some(c) => Err(Error::version(s, format!("is not canonical (canonical form is {c})"))),
        }
    }

    /// Case-decodes (`!r!c1` → `RC1`) and validates an escaped version.
    pub fn from_escaped(escaped: &str) -> Result<Self> {
        let raw = unescape(escaped).map_err(|reason| Error::version(escaped, format!("has a bad case-encoding: {reason}")))?;
        Self::new(&raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn escaped(&self) -> String {
        crate::path::escape_string(&self.0)
    }

    /// Has a pre-release part (pseudo-versions do).
    pub fn is_prerelease(&self) -> bool {
        self.parsed().is_some_and(|p| !p.prerelease.is_empty())
    }

    pub fn is_pseudo(&self) -> bool {
        is_pseudo_version(&self.0)
    }

    pub fn is_incompatible(&self) -> bool {
        self.0.ends_with("+incompatible")
    }

    /// The major version number (saturating at `u64::MAX` for absurd values).
    pub fn major(&self) -> u64 {
        self.major_str().parse().unwrap_or(u64::MAX)
    }

    /// The major version digits, without the `v`.
    fn major_str(&self) -> &str {
        self.parsed().map_or("", |p| p.major)
    }

    fn parsed(&self) -> Option<semver::Parsed<'_>> {
        semver::parse(&self.0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        semver::compare(&self.0, &other.0).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Version {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Version {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// x/mod `module.IsPseudoVersion`, stricter on the revision: it must be 12
/// lowercase hex digits. Shapes: `vX.0.0-TS-REV`, `vX.Y.Z-PRE.0.TS-REV`,
/// `vX.Y.Z-0.TS-REV` (TS = 14 digits), optionally `+build`.
pub fn is_pseudo_version(v: &str) -> bool {
    v.matches('-').count() >= 2 && semver::is_valid_semver(v) && has_pseudo_shape(v)
}

fn has_pseudo_shape(v: &str) -> bool {
    let main = v.split('+').next().unwrap_or(v);
    let Some((head, rev)) = main.rsplit_once('-') else {
        return false;
    };
    if rev.len() != 12 || !rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let Some(ts_start) = head.len().checked_sub(14) else {
        return false;
    };
    let (base, ts) = head.split_at(ts_start);
    if !ts.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if let Some(core) = base.strip_suffix('-') {
        return is_zero_base(core);
    }
    match base.strip_suffix("0.") {
        Some(b) if b.ends_with('-') => is_release_core(&b[..b.len() - 1]),
        Some(b) if b.ends_with('.') => b.split_once('-').is_some_and(|(core, _)| is_release_core(core)),
        _ => false,
    }
}

/// `vN.0.0` (pseudo-version without a base tag).
fn is_zero_base(core: &str) -> bool {
    core.strip_suffix(".0.0").and_then(|m| m.strip_prefix('v')).is_some_and(is_digits)
}

/// `vN.N.N`.
fn is_release_core(core: &str) -> bool {
    let Some(nums) = core.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = nums.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| is_digits(p))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// x/mod `module.Check` (major version must match the path's suffix) plus
/// cmd/go's `+incompatible` rule: only for major >= 2 on a path without suffix.
pub fn check_module_version(path: &ModulePath, v: &Version) -> Result<()> {
    let suffix = path.major_suffix();
    let path_major = suffix.strip_suffix("-unstable").filter(|_| suffix.starts_with(".v")).unwrap_or(suffix);
    let major = v.major_str();
    if v.is_incompatible() {
        return check_incompatible(path, v, path_major);
    }
    if v.as_str().starts_with("v0.0.0-") && path_major == ".v1" {
        return Ok(()); // old gopkg.in pseudo-version bug that x/mod allows
    }
    let want = if path_major.is_empty() {
        if major == "0" || major == "1" {
            return Ok(());
        }
        "v0 or v1"
    } else if &path_major[2..] == major {
        return Ok(());
    } else {
        &path_major[1..]
    };
    Err(mismatch(path, v, &format!("should be {want}, not v{major}")))
}

fn check_incompatible(path: &ModulePath, v: &Version, path_major: &str) -> Result<()> {
    if !path_major.is_empty() {
        let why = format!("+incompatible is not allowed with the major version suffix {path_major:?}");
        return Err(mismatch(path, v, &why));
    }
    if v.major() < 2 {
        return Err(mismatch(path, v, "+incompatible is only allowed for major version 2 or higher"));
    }
    Ok(())
}

fn mismatch(path: &ModulePath, v: &Version, why: &str) -> Error {
    Error::version(v.as_str(), format!("does not match module {:?}: {why}", path.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &str, v: &str) -> Result<()> {
        check_module_version(&ModulePath::new(p).unwrap(), &Version::new(v).unwrap())
    }

    #[test]
    fn canonical_only() {
        assert!(Version::new("v1.2.3").is_ok());
        assert!(Version::new("v2.0.0+incompatible").is_ok());
        let e = Version::new("v1.2").unwrap_err();
        assert_eq!(e.to_string(), r#"version "v1.2" is not canonical (canonical form is v1.2.0)"#);
        let e = Version::new("v1.2.3+meta").unwrap_err();
        assert_eq!(e.to_string(), r#"version "v1.2.3+meta" is not canonical (canonical form is v1.2.3)"#);
        for bad in ["1.2.3", "V1.2.3", "v01.2.3", "v1.2.3-01", "v1.2.3-", "v1.2.3.4", ""] {
            let e = Version::new(bad).unwrap_err();
            assert!(e.to_string().contains("semantic version") || bad.is_empty(), "{e}");
        }
    }

    #[test]
    fn escaping() {
        let v = Version::new("v1.2.3-RC1").unwrap();
        assert_eq!(v.escaped(), "v1.2.3-!r!c1");
        assert_eq!(Version::from_escaped("v1.2.3-!r!c1").unwrap(), v);
        assert!(Version::from_escaped("v1.2.3-RC1").is_err());
        assert_eq!(Version::new("v1.2.3").unwrap().escaped(), "v1.2.3");
        assert_eq!(crate::escape_string("V1.2.3"), "!v1.2.3");
    }

    #[test]
    fn pseudo_vectors() {
        for v in [
            "v0.0.0-20191109021931-daa7c04131f5",
            "v1.2.3-pre.0.20191109021931-daa7c04131f5",
            "v1.2.4-0.20191109021931-daa7c04131f5",
            "v2.0.0-20191109021931-daa7c04131f5+incompatible",
            "v1.2.3-rc.1.0.20191109021931-daa7c04131f5",
        ] {
            assert!(is_pseudo_version(v), "{v}");
            assert!(Version::new(v).unwrap().is_pseudo());
        }
        for v in [
            "v1.2.3",
            "v1.2",
            "v1.2.3-RC1",
            "v1.2.3+meta",
            "v2.0.0+incompatible",
            "1.2.3",
            "V1.2.3",
            "v01.2.3",
            "v1.2.3-01",
            "v1.2.3-",
            "v1.2.3.4",
            "v0.0.0-2019110902193-daa7c04131f5",    // 13-digit timestamp
            "v0.0.0-20191109021931-daa7c04131f",    // 11-char rev
            "v0.0.0-20191109021931-DAA7C04131F5",   // uppercase rev
            "v1.2.3-20191109021931-daa7c04131f5",   // no base and nonzero minor/patch
            "v1.2.4-1.20191109021931-daa7c04131f5", // base must be .0.
        ] {
            assert!(!is_pseudo_version(v), "{v}");
        }
    }

    #[test]
    fn accessors() {
        let v = Version::new("v2.3.4-pre").unwrap();
        assert!(v.is_prerelease() && !v.is_pseudo() && !v.is_incompatible());
        assert_eq!(v.major(), 2);
        let v = Version::new("v3.0.0+incompatible").unwrap();
        assert!(v.is_incompatible() && !v.is_prerelease());
        assert_eq!(v.major(), 3);
    }

    #[test]
    fn ordering() {
        let mut vs: Vec<Version> =
            ["v1.10.0", "v1.2.0", "v2.0.0+incompatible", "v2.0.0", "v1.2.0-rc.1"].iter().map(|s| Version::new(s).unwrap()).collect();
        vs.sort();
        let got: Vec<&str> = vs.iter().map(Version::as_str).collect();
        assert_eq!(got, ["v1.2.0-rc.1", "v1.2.0", "v1.10.0", "v2.0.0", "v2.0.0+incompatible"]);
    }

    #[test]
    fn module_check_vectors() {
        let e = check("example.com/mod", "v2.0.0").unwrap_err().to_string();
        assert!(e.contains("should be v0 or v1, not v2"), "{e}");
        assert!(check("example.com/mod", "v2.0.0+incompatible").is_ok());
        let e = check("example.com/mod/v2", "v3.0.0").unwrap_err().to_string();
        assert!(e.contains("should be v2, not v3"), "{e}");
        assert!(check("gopkg.in/yaml.v2", "v3.0.0").is_err());
        assert!(check("gopkg.in/check.v1", "v0.0.0-20161208181325-20d25e280405").is_ok());
        assert!(check("example.com/mod", "v0.1.0").is_ok());
        assert!(check("example.com/mod", "v1.9.9").is_ok());
        assert!(check("example.com/mod/v2", "v2.1.0").is_ok());
        assert!(check("gopkg.in/yaml.v2", "v2.4.0").is_ok());
        assert!(check("gopkg.in/yaml.v2-unstable", "v2.4.0").is_ok());
        assert!(check("gopkg.in/check.v0", "v0.1.0").is_ok());
        assert!(check("gopkg.in/check.v1", "v0.1.0").is_err());
        assert!(check("example.com/mod", "v1.0.0+incompatible").is_err());
        assert!(check("example.com/mod/v2", "v2.0.0+incompatible").is_err());
        assert!(check("example.com/mod/v3", "v30.0.0").is_err());
        assert!(check("example.com/mod", "v10.0.0-20191109021931-daa7c04131f5+incompatible").is_ok());
    }
}
