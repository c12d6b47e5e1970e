//! The snapshot file format: every key/value pair of the catalog column
//! family, in key order, length-prefixed:
//!
//! ```text
//! "flotilla-snapshot-v1\n" ( u32be key_len, key, u32be value_len, value )*
//! ```
//!
//! Written and read as a stream, so a snapshot never has to fit in memory.

use std::io::{self, Read, Write};

const MAGIC: &[u8] = b"flotilla-snapshot-v1\n";

/// One key and its value.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

pub(crate) fn write_header(w: &mut impl Write) -> io::Result<()> {
    w.write_all(MAGIC)
}

pub(crate) fn write_pair(w: &mut impl Write, key: &[u8], value: &[u8]) -> io::Result<()> {
    for part in [key, value] {
        // A RocksDB key or catalog value never approaches 4 GiB.
        w.write_all(&(part.len() as u32).to_be_bytes())?;
        w.write_all(part)?;
    }
    Ok(())
}

/// Reads the pairs of a snapshot back, one at a time.
pub(crate) struct PairReader<R> {
    inner: R,
}

impl<R: Read> PairReader<R> {
    /// Checks the header.
    pub(crate) fn new(mut inner: R) -> Result<Self, String> {
        let mut magic = [0u8; MAGIC.len()];
        inner.read_exact(&mut magic).map_err(|e| format!("not a flotilla snapshot (no header: {e})"))?;
        if magic != MAGIC {
            return Err("not a flotilla snapshot (bad header)".into());
        }
        Ok(PairReader { inner })
    }

    /// The next pair, or `None` at the end of the snapshot.
    pub(crate) fn next_pair(&mut self) -> Result<Option<Pair>, String> {
        let Some(key) = self.part(true)? else { return Ok(None) };
        let value = self.part(false)?.ok_or("snapshot is truncated")?;
        Ok(Some((key, value)))
    }

    /// One length-prefixed part; `None` on a clean end where `eof_ok`.
    fn part(&mut self, eof_ok: bool) -> Result<Option<Vec<u8>>, String> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < len.len() {
            match self.inner.read(&mut len[got..]) {
                Ok(0) if got == 0 && eof_ok => return Ok(None),
                Ok(0) => return Err("snapshot is truncated".into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading the snapshot: {e}")),
            }
        }
        let len = u32::from_be_bytes(len) as u64;
        let mut part = Vec::new();
        let read = (&mut self.inner).take(len).read_to_end(&mut part).map_err(|e| format!("reading the snapshot: {e}"))?;
        if (read as u64) < len {
            return Err("snapshot is truncated".into());
        }
        Ok(Some(part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[Pair]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        for (k, v) in pairs {
            write_pair(&mut out, k, v).unwrap();
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Pair>, String> {
        let mut reader = PairReader::new(bytes)?;
        let mut pairs = Vec::new();
        while let Some(pair) = reader.next_pair()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![(b"v\0a".to_vec(), b"x".to_vec()), (vec![0xFF], Vec::new())];
        assert_eq!(decode(&encode(&pairs)).unwrap(), pairs);
        assert_eq!(decode(&encode(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn truncated_or_foreign_data_is_refused() {
        let bytes = encode(&[(b"key".to_vec(), b"value".to_vec())]);
        for cut in 1..bytes.len() - MAGIC.len() {
            assert!(decode(&bytes[..bytes.len() - cut]).is_err(), "cut {cut} bytes");
        }
        assert!(decode(b"{\"json\":1}").is_err());
        assert!(decode(b"").is_err());
    }
}
