//! Module zip checks (x/mod `zip.CheckZip` plus what `dirhash.HashZip` and
//! Go's `archive/zip` reject) and the zip's `h1:` hash, in one streaming pass.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};
use zip::{CompressionMethod, ZipArchive};

use crate::error::{clip, Error, Result};
use crate::hash::h1_from_file_hashes;
use crate::path::{check_file_path, ModulePath};
use crate::version::{check_module_version, Version};

const MIB: u64 = 1 << 20;

/// Size limits; `Default` is x/mod's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZipLimits {
    /// Size of the zip file itself (x/mod `MaxZipFile`, 500 MiB).
    pub max_zip_size: u64,
    /// Sum of the declared sizes of all files (500 MiB).
    pub max_uncompressed: u64,
    /// Root `go.mod` (x/mod `MaxGoMod`, 16 MiB).
    pub max_go_mod: u64,
    /// Root `LICENSE` (x/mod `MaxLICENSE`, 16 MiB).
    pub max_license: u64,
    /// Entries (files and directories), checked on the count the zip
    /// declares before any per-entry work (the largest real modules hold
    /// tens of thousands).
    pub max_entries: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_zip_size: 500 * MIB,
            max_uncompressed: 500 * MIB,
            max_go_mod: 16 * MIB,
            max_license: 16 * MIB,
            max_entries: 250_000,
        }
    }
}

/// What a valid module zip contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipSummary {
    /// `h1:` hash over all entries (directories hash as empty files).
    pub h1: String,
    /// Number of file entries (directory entries not counted).
    pub files: usize,
    /// Total uncompressed size of the file entries.
    pub uncompressed: u64,
    /// The root `go.mod`, if the zip has one.
    pub go_mod: Option<Vec<u8>>,
}

/// Per-entry facts from the central directory, as the zip reader sees them.
struct Meta {
    size: u64,
    method: CompressionMethod,
    encrypted: bool,
}

/// A checked file entry waiting to be hashed.
struct FileEntry {
    name: String,
    index: usize,
    size: u64,
    is_go_mod: bool,
}

/// What a checked entry name is.
enum Kind<'a> {
    /// A directory entry (including the `<module>@<version>/` root itself).
    Dir,
    /// A file, with its path relative to the module root.
    File(&'a str),
}

/// Checks a module zip for `module@version` and computes its `h1:` hash.
/// Every entry is streamed through sha256; only the root `go.mod` is kept.
pub fn check_zip<R: Read + Seek>(mut reader: R, module: &ModulePath, version: &Version, limits: &ZipLimits) -> Result<ZipSummary> {
    check_module_version(module, version)?;
    let zip_size = reader.seek(SeekFrom::End(0)).map_err(io_error)?;
    if zip_size > limits.max_zip_size {
        return Err(bad(format!("zip is {zip_size} bytes, the limit is {}", limits.max_zip_size)));
    }
    let entries = declared_entries(&mut reader, zip_size)?;
    if entries > limits.max_entries {
        return Err(bad(format!("zip declares {entries} entries, the limit is {}", limits.max_entries)));
    }
    reader.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let raw_names = raw_central_names(&mut reader, limits.max_entries)?;
    let mut archive = ZipArchive::new(&mut reader).map_err(zip_error)?;
    let (index_of, metas) = archive_index(&mut archive)?;
    let prefix = format!("{module}@{version}/");
    let mut summary = ZipSummary { h1: String::new(), files: 0, uncompressed: 0, go_mod: None };
    let mut hashes = Vec::with_capacity(raw_names.len());
    let mut files = Vec::new();
    let mut collisions = Collisions::default();
    for raw in &raw_names {
        let name = entry_name(raw)?;
        let index = *index_of.get(raw.as_slice()).ok_or_else(|| unreadable(&name))?;
        let meta = &metas[index];
        match classify(&name, &prefix, &mut collisions)? {
            Kind::Dir => {
                check_dir(&name, meta)?;
                hashes.push((name, Sha256::digest(b"").into()));
            }
            Kind::File(rel) => {
                let entry = check_file(&name, rel, index, meta, limits, &mut summary)?;
                files.push(entry);
            }
        }
    }
    for entry in files {
        let (sum, content) = hash_file(&mut archive, &entry)?;
        if entry.is_go_mod {
            summary.go_mod = content;
        }
        hashes.push((entry.name, sum));
    }
    summary.h1 = h1_from_file_hashes(hashes);
    Ok(summary)
}

/// The root `go.mod` of a zip that [`check_zip`] accepted before, if it has
/// one, read without going through the other entries.
pub fn zip_go_mod<R: Read + Seek>(reader: R, module: &ModulePath, version: &Version, limit: u64) -> Result<Option<Vec<u8>>> {
    let mut archive = ZipArchive::new(reader).map_err(zip_error)?;
    let mut entry = match archive.by_name(&format!("{module}@{version}/go.mod")) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(zip_error(e)),
    };
    let mut out = Vec::new();
    (&mut entry).take(limit + 1).read_to_end(&mut out).map_err(io_error)?;
    if out.len() as u64 > limit {
        return Err(bad(format!("go.mod is larger than {limit} bytes")));
    }
    Ok(Some(out))
}

fn bad(msg: String) -> Error {
    Error::InvalidZip(msg)
}

fn io_error(e: io::Error) -> Error {
    bad(format!("reading the zip failed: {e}"))
}

fn zip_error(e: zip::result::ZipError) -> Error {
    bad(format!("not a readable zip: {e}"))
}

fn unreadable(name: &str) -> Error {
    bad(format!("entry {:?} cannot be read separately from another entry with a similar name", clip(name)))
}

/// The number of entries the end-of-central-directory record declares
/// (zip64 included), read before the zip reader allocates per entry; 0 when
/// there is no such record (the zip reader then says what is wrong).
fn declared_entries<R: Read + Seek>(reader: &mut R, zip_size: u64) -> Result<u64> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const LOCATOR: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
    const EOCD64: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];
    let tail_len = zip_size.min(22 + 65_535);
    let tail_start = zip_size - tail_len;
    reader.seek(SeekFrom::Start(tail_start)).map_err(io_error)?;
    let mut tail = vec![0u8; tail_len as usize];
    reader.read_exact(&mut tail).map_err(io_error)?;
    let Some(at) = (0..tail.len().saturating_sub(21)).rev().find(|&i| tail[i..i + 4] == EOCD) else {
        return Ok(0);
    };
    let entries = u64::from(u16::from_le_bytes([tail[at + 10], tail[at + 11]]));
    if entries != 0xFFFF {
        return Ok(entries);
    }
    // Zip64: the locator just before the record points at the zip64 record.
    let Some(locator) = at.checked_sub(20).map(|l| &tail[l..l + 20]) else { return Ok(entries) };
    if locator[..4] != LOCATOR {
        return Ok(entries);
    }
    let offset = u64::from_le_bytes(locator[8..16].try_into().unwrap_or_default());
    if offset.saturating_add(56) > zip_size {
        return Err(bad("the zip64 end of central directory lies beyond the end of the zip".into()));
    }
    reader.seek(SeekFrom::Start(offset)).map_err(io_error)?;
    let mut record = [0u8; 56];
    reader.read_exact(&mut record).map_err(io_error)?;
    if record[..4] != EOCD64 {
        return Ok(entries);
    }
    Ok(u64::from_le_bytes(record[32..40].try_into().unwrap_or_default()))
}

/// Every entry name in the central directory, raw and in order, duplicates
/// included (the zip reader merges entries with equal names); at most `max`.
fn raw_central_names<R: Read + Seek>(reader: &mut R, max: u64) -> Result<Vec<Vec<u8>>> {
    let cd_start = ZipArchive::new(&mut *reader).map_err(zip_error)?.central_directory_start();
    reader.seek(SeekFrom::Start(cd_start)).map_err(io_error)?;
    let mut r = BufReader::new(reader);
    let mut names = Vec::new();
    while let Some(name) = next_central_name(&mut r)? {
        if names.len() as u64 >= max {
            return Err(bad(format!("zip holds more than {max} entries")));
        }
        names.push(name);
    }
    Ok(names)
}

/// Reads one central directory header's name, `None` at the end of the directory.
fn next_central_name<R: Read>(r: &mut R) -> Result<Option<Vec<u8>>> {
    const SIGNATURE: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let mut header = [0u8; 46];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io_error(e)),
    }
    if header[..4] != SIGNATURE {
        return Ok(None);
    }
    let field = |at: usize| u64::from(u16::from_le_bytes([header[at], header[at + 1]]));
    let mut name = vec![0u8; field(28) as usize];
    r.read_exact(&mut name).map_err(io_error)?;
    let skip = field(30) + field(32);
    let skipped = io::copy(&mut r.take(skip), &mut io::sink()).map_err(io_error)?;
    if skipped != skip {
        return Err(bad("central directory is truncated".into()));
    }
    Ok(Some(name))
}

/// Reader index of each raw entry name, and each index's metadata.
type ArchiveIndex = (HashMap<Vec<u8>, usize>, Vec<Meta>);

/// Maps raw entry names to the reader's indices and collects their metadata.
fn archive_index<R: Read + Seek>(archive: &mut ZipArchive<R>) -> Result<ArchiveIndex> {
    let mut index_of = HashMap::with_capacity(archive.len());
    let mut metas = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(zip_error)?;
        index_of.insert(f.name_raw().to_vec(), i);
        metas.push(Meta { size: f.size(), method: f.compression(), encrypted: f.encrypted() });
    }
    Ok((index_of, metas))
}

/// The entry name as UTF-8 without newlines.
fn entry_name(raw: &[u8]) -> Result<String> {
    let name = String::from_utf8(raw.to_vec())
        .map_err(|_| bad(format!("entry name {:?} is not valid UTF-8", clip(&String::from_utf8_lossy(raw)))))?;
    if name.contains('\n') {
        return Err(bad(format!("entry name {:?} contains a newline", clip(&name))));
    }
    Ok(name)
}

/// x/mod `checkZip`'s per-name rules.
fn classify<'a>(name: &'a str, prefix: &str, collisions: &mut Collisions) -> Result<Kind<'a>> {
    let Some(rel) = name.strip_prefix(prefix) else {
        return Err(bad(format!("entry {:?} does not start with {prefix:?}", clip(name))));
    };
    if rel.is_empty() {
        return Ok(Kind::Dir);
    }
    let (rel, is_dir) = rel.strip_suffix('/').map_or((rel, false), |r| (r, true));
    let invalid = |why: String| bad(format!("entry {:?}: {why}", clip(name)));
    if !is_clean(rel) {
        return Err(invalid("file path is not clean".into()));
    }
    check_file_path(rel).map_err(|why| invalid(format!("invalid file path: {why}")))?;
    collisions.check(rel, is_dir).map_err(|e| invalid(e.to_string()))?;
    if is_dir {
        return Ok(Kind::Dir);
    }
    let base = rel.rsplit('/').next().unwrap_or(rel);
    if base.eq_ignore_ascii_case("go.mod") && base != rel {
        return Err(invalid("go.mod file not in module root directory".into()));
    }
    if base.eq_ignore_ascii_case("go.mod") && rel != "go.mod" {
        return Err(invalid("go.mod file name must be lowercase".into()));
    }
    Ok(Kind::File(rel))
}

/// Relative, no empty, `.` or `..` elements (what `path.Clean` leaves alone
/// and `CheckFilePath` accepts).
fn is_clean(rel: &str) -> bool {
    rel.split('/').all(|e| !e.is_empty() && e != "." && e != "..")
}

/// Go's `archive/zip` refuses to open a directory entry with content.
fn check_dir(name: &str, meta: &Meta) -> Result<()> {
    if meta.size != 0 {
        return Err(bad(format!("directory entry {:?} declares {} bytes of content", clip(name), meta.size)));
    }
    Ok(())
}

/// Method and size limits of one file; adds it to the totals.
fn check_file(name: &str, rel: &str, index: usize, meta: &Meta, limits: &ZipLimits, summary: &mut ZipSummary) -> Result<FileEntry> {
    let quoted = clip(name);
    if meta.encrypted {
        return Err(bad(format!("entry {quoted:?} is encrypted")));
    }
    if meta.method != CompressionMethod::Stored && meta.method != CompressionMethod::Deflated {
        let m = meta.method;
        return Err(bad(format!("entry {quoted:?} uses compression method {m:?}; only Store and Deflate are allowed")));
    }
    summary.files += 1;
    summary.uncompressed = summary.uncompressed.saturating_add(meta.size);
    if summary.uncompressed > limits.max_uncompressed {
        let max = limits.max_uncompressed;
        return Err(bad(format!("total uncompressed size of module contents is more than {max} bytes")));
    }
    let limit = match rel {
        "go.mod" => Some(limits.max_go_mod),
        "LICENSE" => Some(limits.max_license),
        _ => None,
    };
    if let Some(max) = limit.filter(|&max| meta.size > max) {
        return Err(bad(format!("{rel} is {} bytes, the limit is {max}", meta.size)));
    }
    Ok(FileEntry { name: name.to_string(), index, size: meta.size, is_go_mod: rel == "go.mod" })
}

/// Streams one file through sha256, checking the decompressed size against
/// the declared one (the reader checks the CRC at the end).
fn hash_file<R: Read + Seek>(archive: &mut ZipArchive<R>, entry: &FileEntry) -> Result<([u8; 32], Option<Vec<u8>>)> {
    let quoted = clip(&entry.name);
    let file = archive.by_index(entry.index).map_err(|e| bad(format!("entry {quoted:?}: {e}")))?;
    let mut limited = file.take(entry.size.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut kept = entry.is_go_mod.then(Vec::new);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(bad(format!("entry {quoted:?}: {e}"))),
        };
        hasher.update(&buf[..n]);
        if let Some(kept) = kept.as_mut() {
            kept.extend_from_slice(&buf[..n]);
        }
        total += n as u64;
    }
    if total != entry.size {
        let size = entry.size;
        let what = if total > size { "more than" } else { "only" };
        return Err(bad(format!("entry {quoted:?} decompresses to {what} {size} bytes declared in its header")));
    }
    Ok((hasher.finalize().into(), kept))
}

/// Two entries of a zip that cannot both be extracted.
#[derive(Debug, thiserror::Error)]
enum Collision {
    #[error("case-insensitive file name collision: {first:?} and {second:?}")]
    Case { first: String, second: String },
    #[error("entry {0:?} is both a file and a directory")]
    FileAndDir(String),
    #[error("multiple entries for file {0:?}")]
    Duplicate(String),
}

/// x/mod's collision checker: no two paths equal under case folding, no path
/// both file and directory, no duplicate files.
#[derive(Default)]
struct Collisions {
    seen: HashMap<String, (String, bool)>,
    dirs: HashSet<String>,
}

impl Collisions {
    fn check(&mut self, path: &str, is_dir: bool) -> std::result::Result<(), Collision> {
        let (mut path, mut is_dir) = (path, is_dir);
        loop {
            if is_dir && self.dirs.contains(path) {
                return Ok(()); // its parents were checked when it was first seen
            }
            self.check_one(path, is_dir)?;
            match path.rfind('/') {
                Some(i) => (path, is_dir) = (&path[..i], true),
                None => return Ok(()),
            }
        }
    }

    fn check_one(&mut self, path: &str, is_dir: bool) -> std::result::Result<(), Collision> {
        let fold = fold_case(path);
        match self.seen.get(&fold) {
            Some((other, _)) if other != path => Err(Collision::Case { first: other.clone(), second: path.to_string() }),
            Some((_, other_dir)) if *other_dir != is_dir => Err(Collision::FileAndDir(path.to_string())),
            Some(_) => Err(Collision::Duplicate(path.to_string())),
            None => {
                self.seen.insert(fold, (path.to_string(), is_dir));
                if is_dir {
                    self.dirs.insert(path.to_string());
                }
                Ok(())
            }
        }
    }
}

/// A key such that two strings get the same key iff Go's `strings.EqualFold`
/// holds, approximating Unicode simple case folding with std's case mappings.
fn fold_case(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

fn fold_char(c: char) -> char {
    if c == '\u{131}' {
        return c; // dotless i has no simple fold partner in Go
    }
    let upper = single(c.to_uppercase()).unwrap_or(c);
    single(upper.to_lowercase()).unwrap_or(upper)
}

fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    match (it.next(), it.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
#[path = "zipcheck_tests.rs"]
mod tests;
