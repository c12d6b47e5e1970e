//! The snapshot wire format: every key/value pair of the catalog column
//! family, in key order, length-prefixed:
//!
//! ```text
//! "flotilla-snapshot-v1\n" ( u32be key_len, key, u32be value_len, value )*
//! ```

const MAGIC: &[u8] = b"flotilla-snapshot-v1\n";

pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) fn encode(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size = pairs.iter().map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>();
    let mut out = Vec::with_capacity(MAGIC.len() + size);
    out.extend_from_slice(MAGIC);
    for (key, value) in pairs {
        for part in [key, value] {
            // A RocksDB key or catalog value never approaches 4 GiB.
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Pairs, String> {
    let mut rest = bytes.strip_prefix(MAGIC).ok_or("not a flotilla snapshot (bad header)")?;
    let mut pairs = Vec::new();
    while !rest.is_empty() {
        let key = take(&mut rest)?;
        let value = take(&mut rest)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn take(rest: &mut &[u8]) -> Result<Vec<u8>, String> {
    let truncated = || "snapshot is truncated".to_string();
    let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    let len = u32::from_be_bytes(*len) as usize;
    if tail.len() < len {
        return Err(truncated());
    }
    let (part, tail) = tail.split_at(len);
    *rest = tail;
    Ok(part.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![(b"v\0a".to_vec(), b"x".to_vec()), (vec![0xFF], Vec::new())];
        assert_eq!(decode(&encode(&pairs)).unwrap(), pairs);
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn truncated_or_foreign_data_is_refused() {
        let bytes = encode(&[(b"key".to_vec(), b"value".to_vec())]);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(b"{\"json\":1}").is_err());
    }
}
