//! Byte sizes in configuration files: a number of bytes, or a string with
//! a unit ("64MiB"), for every section that takes one (`[cache]`,
//! `[replication]`).

use std::fmt;

use serde::Deserialize;

/// A size that does not parse; the message says what would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError(String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SizeError {}

/// Deserializes a byte size: a number of bytes or a string with a unit.
pub fn byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(t) => parse_bytes(&t).map_err(serde::de::Error::custom),
    }
}

/// Parses a byte size: a plain number of bytes, or a number with one of the
/// units B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024);
/// "0" means none.
pub fn parse_bytes(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].trim());
    let value: f64 =
        number.parse().map_err(|_| SizeError(format!("{text:?} is not a size such as \"50MiB\", \"100MB\" or \"1048576\"")))?;
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(SizeError(format!("{text:?}: unknown unit {unit:?} (use B, KB, MB, GB, KiB, MiB or GiB)"))),
    };
    Ok((value * factor).round() as u64)
}
