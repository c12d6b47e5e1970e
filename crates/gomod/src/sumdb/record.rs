//! What the database serves: tree heads (`go.sum database tree\nN\nhash\n`,
//! signed), and lookups (`<record id>\n<record text>\n<signed tree head>`),
//! whose record text holds a version's go.sum lines.

use super::tlog::Hash;
use crate::{Error, Result};

const TREE_PREFIX: &str = "go.sum database tree\n";
/// Larger trees are refused, so that no index arithmetic can overflow
/// (sum.golang.org holds well under 2^32 records).
pub const MAX_TREE_SIZE: i64 = 1 << 48;

/// A tree head: the log's size and root hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tree {
    pub n: i64,
    pub hash: Hash,
}

impl Tree {
    /// The tree-head text a database signs.
    pub fn format(&self) -> String {
        format!("{TREE_PREFIX}{}\n{}\n", self.n, self.hash)
    }
}

/// Parses a tree-head text (the text of a signed note, extra lines allowed
/// after the hash as the format reserves them).
pub fn parse_tree(text: &str) -> Result<Tree> {
    let malformed = || Error::Sumdb("malformed tree head".into());
    let rest = text.strip_prefix(TREE_PREFIX).ok_or_else(malformed)?;
    let mut lines = rest.splitn(3, '\n');
    let (size, hash) = (lines.next().ok_or_else(malformed)?, lines.next().ok_or_else(malformed)?);
    if lines.next().is_none() || text.len() > 1_000_000 {
        return Err(malformed());
    }
    let n: i64 = size.parse().map_err(|_| malformed())?;
    if !(0..=MAX_TREE_SIZE).contains(&n) || size != n.to_string() {
        return Err(malformed());
    }
    Ok(Tree { n, hash: Hash::parse(hash).map_err(|_| malformed())? })
}

/// A lookup answer, split into its parts (not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup<'a> {
    pub id: i64,
    /// The record text, ending in a newline.
    pub text: &'a str,
    /// The signed tree head that follows.
    pub signed_tree: &'a [u8],
}

/// Splits a `/lookup/` answer into record id, record text and signed note.
pub fn parse_lookup(body: &[u8]) -> Result<Lookup<'_>> {
    let malformed = |why: &str| Error::Sumdb(format!("malformed lookup answer: {why}"));
    let nl = body.iter().position(|b| *b == b'\n').ok_or_else(|| malformed("no record id"))?;
    let id_text = std::str::from_utf8(&body[..nl]).map_err(|_| malformed("record id is not text"))?;
    let id: i64 = id_text.parse().ok().filter(|id| *id >= 0).ok_or_else(|| malformed("bad record id"))?;
    let rest = &body[nl + 1..];
    let end = rest.windows(2).position(|w| w == b"\n\n").ok_or_else(|| malformed("record text does not end"))?;
    let text = std::str::from_utf8(&rest[..end + 1]).map_err(|_| malformed("record text is not UTF-8"))?;
    if text.chars().any(|c| c < '\u{20}' && c != '\n') {
        return Err(malformed("record text has control characters"));
    }
    Ok(Lookup { id, text, signed_tree: &rest[end + 2..] })
}

/// The `h1:` hashes a record gives for one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHashes {
    pub zip: String,
    pub go_mod: String,
}

/// Reads the `module version h1:…` and `module version/go.mod h1:…` lines
/// of a record, which must be about `module` (not escaped) at `version`.
pub fn record_hashes(text: &str, module: &str, version: &str) -> Result<RecordHashes> {
    let (mut zip, mut go_mod) = (None, None);
    let mod_version = format!("{version}/go.mod");
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let &[path, vers, hash] = fields.as_slice() else {
            return Err(Error::Sumdb(format!("malformed record line {line:?}")));
        };
        if path != module {
            return Err(Error::Sumdb(format!("record is about {path}, not {module}")));
        }
        if vers == version {
            zip = Some(hash.to_string());
        } else if vers == mod_version {
            go_mod = Some(hash.to_string());
        } else {
            return Err(Error::Sumdb(format!("record is about {path} {vers}, not {version}")));
        }
    }
    match (zip, go_mod) {
        (Some(zip), Some(go_mod)) => Ok(RecordHashes { zip, go_mod }),
        _ => Err(Error::Sumdb(format!("record for {module} {version} lacks its zip or go.mod hash"))),
    }
}
