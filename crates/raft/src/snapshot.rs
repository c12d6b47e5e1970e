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
    pub(crate) fn new(mut inner: R) -> io::Result<Self> {
        let mut magic = [0u8; MAGIC.len()];
        inner.read_exact(&mut magic).map_err(|e| invalid(format!("not a flotilla snapshot (no header: {e})")))?;
        if magic != MAGIC {
            return Err(invalid("not a flotilla snapshot (bad header)"));
        }
        Ok(PairReader { inner })
    }

    /// The next pair, or `None` at the end of the snapshot.
    pub(crate) fn next_pair(&mut self) -> io::Result<Option<Pair>> {
        let Some(key) = self.part(true)? else { return Ok(None) };
        let value = self.part(false)?.ok_or_else(truncated)?;
        Ok(Some((key, value)))
    }

    /// One length-prefixed part; `None` on a clean end where `eof_ok`.
    fn part(&mut self, eof_ok: bool) -> io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < len.len() {
            match self.inner.read(&mut len[got..]) {
                Ok(0) if got == 0 && eof_ok => return Ok(None),
                Ok(0) => return Err(truncated()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(reading(e)),
            }
        }
        let len = u32::from_be_bytes(len) as u64;
        let mut part = Vec::new();
        let read = (&mut self.inner).take(len).read_to_end(&mut part).map_err(reading)?;
        if (read as u64) < len {
            return Err(truncated());
        }
        Ok(Some(part))
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "snapshot is truncated")
}

fn reading(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("reading the snapshot: {e}"))
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

    fn decode(bytes: &[u8]) -> io::Result<Vec<Pair>> {
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
