//! Pure Go-module logic for Flotilla: module path and version validation and
//! escaping (x/mod `module`), Go semver ordering (x/mod `semver`),
//! pseudo-versions, GOPROXY request parsing, module zip checks (x/mod `zip`),
//! `h1:` hashes (x/mod `sumdb/dirhash`), `.info` and go.mod validation and
//! `GOPRIVATE`-style prefix patterns, and the checksum database's signed
//! notes, tree heads, tiles and proofs (x/mod `sumdb`, module [`sumdb`]). No I/O beyond reading a zip from a
//! `Read + Seek`.

mod error;
mod hash;
mod info;
mod modfile;
mod path;
mod pattern;
mod request;
mod semver;
pub mod sumdb;
mod version;
mod zipcheck;

pub use error::{Error, Result};
pub use hash::{go_sum_lines, h1_from_file_hashes, h1_go_mod};
pub use info::{parse_info, Info};
pub use modfile::{go_mod_module_path, go_mod_requires};
pub use path::{escape_string, unescape_string, ModulePath};
pub use pattern::{check_prefix_patterns, match_prefix_patterns, path_match};
pub use request::{parse_request, Request, VersionRef, MAX_REQUEST_PATH};
pub use semver::{canonical, compare, is_valid_semver};
pub use version::{check_module_version, is_pseudo_version, Version};
pub use zipcheck::{check_zip, zip_go_mod, ZipLimits, ZipSummary};
