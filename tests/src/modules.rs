//! The Go modules the fake origin serves, generated in memory: real
//! packages (a program importing them builds), zips laid out as
//! `<raw module path>@<version>/<file>`, byte-exact `.mod` files and
//! `.info` JSON.
//!
//! The standard set covers several modules with several versions, a `/v2`
//! major version, an `+incompatible` version without go.mod, an uppercase
//! path with an uppercase pre-release, a retraction, and a module that only
//! has a pseudo-version (empty list, answered by `@latest`). A large module
//! with incompressible data can be added for crash and throttling tests.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::escape::escape;

/// Commit time of every generated version.
pub const TIME: &str = "2024-01-02T03:04:05Z";
/// The only version of `example.com/pseudo`; its timestamp is [`TIME`].
pub const PSEUDO_VERSION: &str = "v0.0.0-20240102030405-abcdefabcdef";
/// The module added by [`ModuleSet::with_large`].
pub const LARGE_MODULE: &str = "example.com/large";
pub const LARGE_VERSION: &str = "v1.0.0";

/// The module the go command downloads toolchains as.
pub const TOOLCHAIN_MODULE: &str = "golang.org/toolchain";

/// The version of [`TOOLCHAIN_MODULE`] that holds Go `go_version` (`go1.22.0`)
/// for `goos`/`goarch`.
pub fn toolchain_version(go_version: &str, goos: &str, goarch: &str) -> String {
    format!("v0.0.1-{go_version}.{goos}-{goarch}")
}

/// One version of one module, as an upstream proxy serves it.
#[derive(Debug, Clone)]
pub struct ModuleVersion {
    pub path: String,
    pub version: String,
    pub info: Vec<u8>,
    pub go_mod: Vec<u8>,
    pub zip: Vec<u8>,
}

impl ModuleVersion {
    /// The escaped request path of `.info`, `.mod` or `.zip`:
    /// `/example.com/!upper/mod/@v/v1.1.0-!r!c1.zip`.
    pub fn url_path(&self, ext: &str) -> String {
        format!("/{}/@v/{}.{ext}", escape(&self.path), escape(&self.version))
    }

    pub fn zip_sha256(&self) -> String {
        crate::sha256_hex(&self.zip)
    }

    /// `path@version`, as the go command writes it.
    pub fn spec(&self) -> String {
        format!("{}@{}", self.path, self.version)
    }
}

#[derive(Debug, Clone, Default)]
struct Module {
    /// In ascending order; only tagged versions go into `@v/list`.
    versions: Vec<ModuleVersion>,
    latest: String,
}

/// All modules of a fake origin, keyed by raw module path.
#[derive(Debug, Clone, Default)]
pub struct ModuleSet {
    modules: BTreeMap<String, Module>,
}

/// `@v/list` path of a module.
pub fn list_path(module: &str) -> String {
    format!("/{}/@v/list", escape(module))
}

/// `@latest` path of a module.
pub fn latest_path(module: &str) -> String {
    format!("/{}/@latest", escape(module))
}

struct Spec<'a> {
    path: &'a str,
    package: &'a str,
    versions: &'a [&'a str],
    latest: &'a str,
}

const STANDARD: &[Spec<'static>] = &[
    Spec { path: "example.com/alpha", package: "alpha", versions: &["v1.0.0", "v1.1.0", "v1.2.0"], latest: "v1.2.0" },
    Spec { path: "example.com/alpha/v2", package: "alpha", versions: &["v2.0.0"], latest: "v2.0.0" },
    Spec { path: "example.com/beta", package: "beta", versions: &["v0.9.0", "v1.0.0", "v1.3.0", "v1.4.0-beta.1"], latest: "v1.3.0" },
    Spec { path: "example.com/legacy", package: "legacy", versions: &["v2.0.0+incompatible"], latest: "v2.0.0+incompatible" },
    Spec { path: "example.com/Upper/mod", package: "mod", versions: &["v1.0.0", "v1.1.0-RC1"], latest: "v1.0.0" },
    Spec { path: "example.com/retracted", package: "retracted", versions: &["v1.0.0", "v1.1.0", "v1.2.0"], latest: "v1.2.0" },
    Spec { path: "example.com/pseudo", package: "pseudo", versions: &[PSEUDO_VERSION], latest: PSEUDO_VERSION },
];

impl ModuleSet {
    /// The standard set described in the module documentation.
    pub fn standard() -> Self {
        let mut set = ModuleSet::default();
        for spec in STANDARD {
            let versions = spec.versions.iter().map(|v| standard_version(spec, v)).collect();
            set.modules.insert(spec.path.to_owned(), Module { versions, latest: spec.latest.to_owned() });
        }
        set
    }

    /// Adds [`LARGE_MODULE`] whose zip holds `bytes` of incompressible data
    /// (stored, not deflated, so the zip is slightly larger than `bytes`).
    pub fn with_large(mut self, bytes: usize) -> Self {
        let files = vec![
            ("go.mod".to_owned(), go_mod(LARGE_MODULE, None)),
            ("large.go".to_owned(), hello_source("large", &format!("{LARGE_MODULE} {LARGE_VERSION}"))),
            ("data.bin".to_owned(), noise(bytes)),
        ];
        let v = version(LARGE_MODULE, LARGE_VERSION, files, go_mod(LARGE_MODULE, None));
        self.modules.insert(LARGE_MODULE.to_owned(), Module { versions: vec![v], latest: LARGE_VERSION.to_owned() });
        self
    }

    /// Adds a Go toolchain packaged the way the go command's automatic
    /// toolchain switch downloads it: module [`TOOLCHAIN_MODULE`], version
    /// `v0.0.1-<go version>.<goos>-<goarch>`, a synthesised `.mod`, and a zip
    /// of the Go distribution (`bin/go`, `pkg/tool/…`, nested go.mod files
    /// renamed to `_go.mod`, no root go.mod). Its `bin/go` is a shell script
    /// that prints `go version <go version> <goos>/<goarch>`.
    pub fn with_toolchain(mut self, go_version: &str, goos: &str, goarch: &str) -> Self {
        let version = toolchain_version(go_version, goos, goarch);
        let script = format!("#!/bin/sh\necho go version {go_version} {goos}/{goarch}\n").into_bytes();
        let files = vec![
            ("VERSION".to_owned(), format!("{go_version}\ntime {TIME}\n").into_bytes()),
            ("bin/go".to_owned(), script.clone()),
            ("bin/gofmt".to_owned(), script),
            (format!("pkg/tool/{goos}_{goarch}/compile"), noise(4096)),
            ("src/_go.mod".to_owned(), b"module std\n\ngo 1.22\n".to_vec()),
            ("src/cmd/_go.mod".to_owned(), b"module cmd\n\ngo 1.22\n".to_vec()),
            ("src/fmt/print.go".to_owned(), b"package fmt\n".to_vec()),
        ];
        let v = ModuleVersion {
            path: TOOLCHAIN_MODULE.to_owned(),
            version: version.clone(),
            info: format!("{{\"Version\":\"{version}\", \"Time\":\"{TIME}\"}}\n").into_bytes(),
            go_mod: format!("module {TOOLCHAIN_MODULE}\n").into_bytes(),
            zip: build_zip(TOOLCHAIN_MODULE, &version, &files),
        };
        self.insert(v);
        self
    }

    /// Adds or replaces one version and makes it the one `@latest` names
    /// (a test "publishing" a new release).
    pub fn insert(&mut self, v: ModuleVersion) {
        let module = self.modules.entry(v.path.clone()).or_default();
        module.versions.retain(|old| old.version != v.version);
        module.latest = v.version.clone();
        module.versions.push(v);
    }

    /// A new version of a standard-looking module `path` with one package
    /// `package` (for tests that publish versions while running).
    pub fn make_version(path: &str, package: &str, v: &str) -> ModuleVersion {
        let spec = Spec { path, package, versions: &[], latest: "" };
        standard_version(&spec, v)
    }

    pub fn find(&self, path: &str, version: &str) -> Option<&ModuleVersion> {
        self.modules.get(path)?.versions.iter().find(|v| v.version == version)
    }

    /// The version, or a panic naming it.
    pub fn get(&self, path: &str, version: &str) -> &ModuleVersion {
        self.find(path, version).unwrap_or_else(|| panic!("test module {path}@{version} does not exist"))
    }

    /// Raw module paths, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// Every version of every module.
    pub fn versions(&self) -> impl Iterator<Item = &ModuleVersion> {
        self.modules.values().flat_map(|m| m.versions.iter())
    }

    /// Tagged (non-pseudo) versions of a module in ascending order; `None`
    /// for an unknown module.
    pub fn tagged(&self, path: &str) -> Option<Vec<&str>> {
        let module = self.modules.get(path)?;
        Some(module.versions.iter().map(|v| v.version.as_str()).filter(|v| !is_pseudo(v)).collect())
    }

    /// The `@v/list` body: tagged versions, one per line.
    pub fn list_body(&self, path: &str) -> Option<String> {
        Some(self.tagged(path)?.iter().map(|v| format!("{v}\n")).collect())
    }

    /// The version `@latest` names.
    pub fn latest(&self, path: &str) -> Option<&ModuleVersion> {
        let module = self.modules.get(path)?;
        self.find(path, &module.latest)
    }

    /// Writes the set as a static GOPROXY tree (what a `file://` proxy or a
    /// plain web server such as nginx serves): `<escaped path>/@v/list`,
    /// `@latest` and `@v/<escaped version>.{info,mod,zip}`.
    pub fn write_tree(&self, dir: &Path) -> std::io::Result<()> {
        for path in self.paths() {
            let base = dir.join(escape(path));
            std::fs::create_dir_all(base.join("@v"))?;
            std::fs::write(base.join("@v/list"), self.list_body(path).unwrap_or_default())?;
            if let Some(latest) = self.latest(path) {
                std::fs::write(base.join("@latest"), &latest.info)?;
            }
        }
        for v in self.versions() {
            for (ext, bytes) in [("info", &v.info), ("mod", &v.go_mod), ("zip", &v.zip)] {
                std::fs::write(dir.join(v.url_path(ext).trim_start_matches('/')), bytes)?;
            }
        }
        Ok(())
    }
}

/// A main module that imports one package of every standard module.
#[derive(Debug, Clone)]
pub struct Program {
    /// `(module path, version)` the program requires.
    pub requires: Vec<(String, String)>,
    /// `(alias, import path)`.
    pub imports: Vec<(String, String)>,
    /// What the built program prints.
    pub expected_output: String,
}

impl Program {
    /// Requires the newest release of every standard module, except
    /// `example.com/Upper/mod` at `v1.1.0-RC1` (an escaped version on the
    /// wire) and `example.com/pseudo` at its pseudo-version.
    pub fn standard() -> Self {
        let picks = [
            ("alpha", "example.com/alpha", "v1.2.0"),
            ("alphav2", "example.com/alpha/v2", "v2.0.0"),
            ("beta", "example.com/beta", "v1.3.0"),
            ("legacy", "example.com/legacy", "v2.0.0+incompatible"),
            ("upper", "example.com/Upper/mod", "v1.1.0-RC1"),
            ("retracted", "example.com/retracted", "v1.2.0"),
            ("pseudo", "example.com/pseudo", PSEUDO_VERSION),
        ];
        Program {
            requires: picks.iter().map(|(_, p, v)| (p.to_string(), v.to_string())).collect(),
            imports: picks.iter().map(|(a, p, _)| (a.to_string(), p.to_string())).collect(),
            expected_output: picks.iter().map(|(_, p, v)| format!("{p} {v}\n")).collect(),
        }
    }

    /// `go.mod` of the main module `example.com/app`, with the requirements.
    pub fn go_mod(&self) -> String {
        let mut s = String::from("module example.com/app\n\ngo 1.18\n");
        if !self.requires.is_empty() {
            s.push_str("\nrequire (\n");
            for (p, v) in &self.requires {
                s.push_str(&format!("\t{p} {v}\n"));
            }
            s.push_str(")\n");
        }
        s
    }

    /// `go.mod` without requirements, for tests that let `go get` add them.
    pub fn bare_go_mod(&self) -> String {
        "module example.com/app\n\ngo 1.18\n".to_owned()
    }

    pub fn main_go(&self) -> String {
        let mut s = String::from("package main\n\nimport (\n\t\"fmt\"\n\n");
        for (alias, path) in &self.imports {
            s.push_str(&format!("\t{alias} \"{path}\"\n"));
        }
        s.push_str(")\n\nfunc main() {\n");
        for (alias, _) in &self.imports {
            s.push_str(&format!("\tfmt.Println({alias}.Hello())\n"));
        }
        s.push_str("}\n");
        s
    }
}

fn standard_version(spec: &Spec<'_>, v: &str) -> ModuleVersion {
    let message = format!("{} {v}", spec.path);
    let mut files = vec![
        (format!("{}.go", spec.package), hello_source(spec.package, &message)),
        ("README.md".to_owned(), format!("# {}\n\nTest module generated by flotilla-e2e.\n", spec.path).into_bytes()),
    ];
    if v.ends_with("+incompatible") {
        let legacy_mod = format!("module {}\n", spec.path).into_bytes();
        return version(spec.path, v, files, legacy_mod);
    }
    let retract = (spec.path == "example.com/retracted" && v == "v1.2.0").then_some("v1.1.0");
    let go_mod = go_mod(spec.path, retract);
    files.insert(0, ("go.mod".to_owned(), go_mod.clone()));
    version(spec.path, v, files, go_mod)
}

fn version(path: &str, v: &str, files: Vec<(String, Vec<u8>)>, go_mod: Vec<u8>) -> ModuleVersion {
    ModuleVersion {
        path: path.to_owned(),
        version: v.to_owned(),
        info: format!("{{\"Version\":\"{v}\",\"Time\":\"{TIME}\"}}").into_bytes(),
        go_mod,
        zip: build_zip(path, v, &files),
    }
}

fn go_mod(path: &str, retract: Option<&str>) -> Vec<u8> {
    let mut s = format!("module {path}\n\ngo 1.18\n");
    if let Some(r) = retract {
        s.push_str(&format!("\n// {r} was published by mistake.\nretract {r}\n"));
    }
    s.into_bytes()
}

fn hello_source(package: &str, message: &str) -> Vec<u8> {
    format!("package {package}\n\n// Hello says which module version this is.\nfunc Hello() string {{ return \"{message}\" }}\n")
        .into_bytes()
}

/// Builds a zip whose entries are `<path>@<version>/<name>`; `.bin` files are
/// stored, the rest deflated.
pub fn build_zip(path: &str, version: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        let method = if name.ends_with(".bin") { CompressionMethod::Stored } else { CompressionMethod::Deflated };
        let opts = SimpleFileOptions::default().compression_method(method).large_file(data.len() > u32::MAX as usize / 2);
        w.start_file(format!("{path}@{version}/{name}"), opts).expect("start zip entry in memory");
        w.write_all(data).expect("write zip entry in memory");
    }
    w.finish().expect("finish zip in memory").into_inner()
}

/// Deterministic incompressible bytes (xorshift64*).
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn is_pseudo(v: &str) -> bool {
    // Enough for the generated set: pseudo-versions carry a 14-digit
    // timestamp followed by a 12-character revision.
    let parts: Vec<&str> = v.rsplitn(3, '-').collect();
    parts.len() == 3 && parts[0].len() == 12 && parts[1].len() >= 14 && parts[1][parts[1].len() - 14..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(zip_bytes: &[u8]) -> Vec<String> {
        let archive = zip::ZipArchive::new(Cursor::new(zip_bytes)).expect("generated zip opens");
        archive.file_names().map(str::to_owned).collect()
    }

    #[test]
    fn zip_entries_carry_raw_path_and_version_prefix() {
        let set = ModuleSet::standard();
        for v in set.versions() {
            let prefix = format!("{}@{}/", v.path, v.version);
            for name in names(&v.zip) {
                assert!(name.starts_with(&prefix), "{name} lacks {prefix}");
            }
        }
        let upper = names(&set.get("example.com/Upper/mod", "v1.1.0-RC1").zip);
        assert!(upper.contains(&"example.com/Upper/mod@v1.1.0-RC1/go.mod".to_owned()), "{upper:?}");
    }

    #[test]
    fn incompatible_version_has_no_go_mod_and_a_synthetic_mod() {
        let set = ModuleSet::standard();
        let v = set.get("example.com/legacy", "v2.0.0+incompatible");
        assert!(!names(&v.zip).iter().any(|n| n.ends_with("/go.mod")));
        assert_eq!(v.go_mod, b"module example.com/legacy\n");
    }

    #[test]
    fn pseudo_module_lists_nothing_but_has_a_latest() {
        let set = ModuleSet::standard();
        assert_eq!(set.list_body("example.com/pseudo").as_deref(), Some(""));
        assert_eq!(set.latest("example.com/pseudo").map(|v| v.version.as_str()), Some(PSEUDO_VERSION));
        assert_eq!(set.list_body("example.com/alpha").as_deref(), Some("v1.0.0\nv1.1.0\nv1.2.0\n"));
    }

    #[test]
    fn large_module_zip_is_about_the_requested_size() {
        let set = ModuleSet::standard().with_large(1 << 20);
        let zip = &set.get(LARGE_MODULE, LARGE_VERSION).zip;
        assert!(zip.len() > 1 << 20 && zip.len() < (1 << 20) + 4096, "{}", zip.len());
    }

    #[test]
    fn write_tree_uses_escaped_names() {
        let dir = tempfile::tempdir().unwrap();
        ModuleSet::standard().write_tree(dir.path()).unwrap();
        assert!(dir.path().join("example.com/!upper/mod/@v/v1.1.0-!r!c1.zip").is_file());
        assert!(dir.path().join("example.com/pseudo/@latest").is_file());
    }
}
