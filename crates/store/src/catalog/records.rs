//! The records the catalog keeps and the operations that change it: these
//! are what raft entries and snapshots carry, so their serde is a format.

use gomod::{ModulePath, Version};
use serde::{Deserialize, Serialize};

use crate::Sha256;

/// Where a version's zip lives and what it hashes to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ZipRef {
    /// Serialised as hex, as always.
    pub sha256: Sha256,
    pub size: u64,
    /// Go's `h1:` dirhash of the zip, as in go.sum.
    pub h1: String,
    /// When the primary fetched it from upstream, ms since the Unix epoch;
    /// 0 (absent from the record) for zips recorded before this was kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fetched_at_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The same zip is the same content: when a primary fetched it does not
/// make it another (a second writer of the same zip keeps the first one's
/// record, fetch time included).
impl PartialEq for ZipRef {
    fn eq(&self, other: &Self) -> bool {
        (&self.sha256, self.size, &self.h1) == (&other.sha256, other.size, &other.h1)
    }
}

impl Eq for ZipRef {}

/// A cached `@v/list` answer from upstream and when it was fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRecord {
    pub versions: Vec<String>,
    pub fetched_at_ms: u64,
}

/// A cached `@latest` answer from upstream and when it was fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestRecord {
    pub info: String,
    pub fetched_at_ms: u64,
}

/// The newest tree head of a checksum database that the primary verified
/// (signature, and consistency with the one recorded before).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SumdbHead {
    /// The signed note as the database sent it.
    pub note: String,
    /// The tree size it signs.
    pub size: i64,
    pub fetched_at_ms: u64,
}

/// The parts of one version that an operation sets; `None` leaves a part as it is.
/// The parts of a version one catalog write records. In raft entries (JSON)
/// the `.info` and `.mod` bytes are base64 strings; arrays of numbers (the
/// first encoding) are still read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionParts {
    #[serde(default, with = "base64_bytes")]
    pub info: Option<Vec<u8>>,
    #[serde(default, with = "base64_bytes")]
    pub go_mod: Option<Vec<u8>>,
    pub zip: Option<ZipRef>,
}

mod base64_vec {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Numbers(Vec<u8>),
        }
        Option::<Repr>::deserialize(d)?
            .map(|repr| match repr {
                Repr::Text(text) => STANDARD.decode(text).map_err(serde::de::Error::custom),
                Repr::Numbers(bytes) => Ok(bytes),
            })
            .transpose()
    }
}

/// A change to the catalog. These are the entries a replicated log carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogOp {
    PutVersion {
        module: ModulePath,
        version: Version,
        parts: VersionParts,
    },
    PutList {
        module: ModulePath,
        list: ListRecord,
    },
    PutLatest {
        module: ModulePath,
        latest: LatestRecord,
    },
    Purge {
        module: ModulePath,
        version: Version,
    },
    /// A checksum database's lookup answer for `key` (`lookup/<module>@<version>`,
    /// escaped), verified by the primary. Never replaced.
    PutSumdbLookup {
        db: String,
        key: String,
        #[serde(with = "base64_vec")]
        body: Vec<u8>,
    },
    /// A hash tile (`tile/<H>/<L>/<NNN>`, no `.p/W`), authenticated by the
    /// primary. Kept when wider than the one recorded: a narrower tile is a
    /// prefix of a wider one.
    PutSumdbTile {
        db: String,
        tile: String,
        #[serde(with = "base64_vec")]
        data: Vec<u8>,
    },
    /// A verified tree head; kept when it signs at least as many records as
    /// the one recorded.
    PutSumdbHead {
        db: String,
        head: SumdbHead,
    },
}
