//! Serving a stored zip: streamed from disk (never whole in memory) with
//! Content-Length, a strong ETag (the sha256), `Range`/`If-Range` and
//! `If-None-Match`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use store::{BlobContent, OpenBlob, ZipRef};

use crate::hotzips::WHOLE_READ_MAX;
use crate::primary::Incoming;
use crate::proxy::IMMUTABLE;
use crate::{ApiError, AppState};

/// Read size when streaming a large zip: a few of these per client are all
/// the memory a download holds.
const CHUNK: u64 = 256 * 1024;

/// A verified zip ready to be served.
pub enum Content {
    /// Small zips, read whole (or found in memory).
    Memory(Bytes),
    /// Larger zips, streamed from the open file.
    File(OpenBlob),
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Memory(bytes) => bytes.len() as u64,
            Content::File(blob) => blob.len,
        }
    }
}

/// The verified content of `zip`'s blob: from memory when it is hot, else
/// opened (and read whole if small) in one trip to a blocking thread,
/// verifying it if this node has not yet. A corrupt blob is quarantined by
/// the store and reported as an error here.
pub async fn open(state: &Arc<AppState>, zip: &ZipRef) -> Result<Option<Content>, ApiError> {
    let sha = zip.sha256;
    if let Some(bytes) = state.hot_zips.get(&sha) {
        return Ok(Some(Content::Memory(bytes)));
    }
    let blobs = state.store.blobs.clone();
    let read = tokio::task::spawn_blocking(move || blobs.read(&sha, WHOLE_READ_MAX))
        .await
        .map_err(|e| ApiError::internal(format!("blob read task failed: {e}")))?;
    match read {
        Ok(Some(BlobContent::Whole { bytes, stamp, file })) => {
            Ok(Some(Content::Memory(state.hot_zips.keep(&state.store.blobs, sha, bytes, stamp, file))))
        }
        Ok(Some(BlobContent::Open(blob))) => Ok(Some(Content::File(blob))),
        Ok(None) => Ok(None),
        Err(e @ store::Error::Corrupt { .. }) => {
            state.metrics.corrupt_blobs.inc();
            state.cluster.blob_corrupt(sha);
            Err(ApiError::internal(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn respond(zip: &ZipRef, content: Content, req: &Incoming<'_>) -> Response {
    let headers = req.headers;
    let etag_value = etag_of(&zip.sha256);
    let etag = etag_value.to_str().unwrap_or_default();
    if header_is(headers, header::IF_NONE_MATCH, etag) {
        return build(StatusCode::NOT_MODIFIED, etag_value, None, 0, Body::empty());
    }
    let size = content.len();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) if range_applies(headers, etag) => match parse_range(spec, size) {
            RangeSpec::One(s, e) => Some((s, e)),
            RangeSpec::Unsatisfiable => return unsatisfiable(size),
            RangeSpec::Ignored => None,
        },
        _ => None,
    };
    let (start, len) = range.map(|(s, e)| (s, e - s + 1)).unwrap_or((0, size));
    let body = match content {
        Content::Memory(bytes) => Body::from(bytes.slice(start as usize..(start + len) as usize)),
        Content::File(blob) => file_body(blob, start, len, req.zero_copy),
    };
    match range {
        Some((s, e)) => build(StatusCode::PARTIAL_CONTENT, etag_value, Some(format!("bytes {s}-{e}/{size}")), len, body),
        None => build(StatusCode::OK, etag_value, None, len, body),
    }
}

/// A large zip's body: the mapped file, which the connection sends with
/// sendfile (no copy through the process, no memory per client), where it
/// can; else streamed from the file in chunks.
fn file_body(blob: OpenBlob, start: u64, len: u64, zero_copy: bool) -> Body {
    if zero_copy {
        match blob.file.try_clone().and_then(|file| crate::zerocopy::map(file, blob.len)) {
            Ok(mapped) => return Body::from(mapped.slice(start as usize..(start + len) as usize)),
            Err(e) => tracing::warn!(error = %e, "cannot map a zip for sendfile; streaming it instead"),
        }
    }
    Body::from_stream(stream_file(blob.file, start, len))
}

/// `len` bytes of `file` from `start`, read straight into the buffers the
/// response sends (positional reads, one blocking hop per chunk).
fn stream_file(file: std::fs::File, start: u64, len: u64) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    let end = start + len;
    futures::stream::try_unfold((Arc::new(file), start), move |(file, pos)| async move {
        if pos >= end {
            return Ok(None);
        }
        let n = CHUNK.min(end - pos) as usize;
        let reader = file.clone();
        let chunk = tokio::task::spawn_blocking(move || read_chunk(&reader, pos, n)).await.map_err(std::io::Error::other)??;
        Ok(Some((chunk, (file, pos + n as u64))))
    })
}

/// `n` bytes of `file` at `pos`, read into fresh, uninitialised memory:
/// a zeroed buffer (what `vec![0; n]` is) costs one more pass over every
/// byte served, as much as the copy out of the page cache itself.
fn read_chunk(file: &std::fs::File, pos: u64, n: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(n);
    while buf.len() < n {
        let at = pos + buf.len() as u64;
        // Reads into the spare capacity and extends the length by what arrived.
        if rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the zip file ended before its recorded size"));
        }
    }
    // The allocation may have had room for a few bytes past the range.
    buf.truncate(n);
    Ok(Bytes::from(buf))
}

/// The strong ETag of a zip: its sha256 in hex, quoted (made on the
/// stack; the header value is the one copy).
fn etag_of(sha: &store::Sha256) -> HeaderValue {
    let mut etag = [b'"'; 66];
    etag[1..65].copy_from_slice(&sha.hex());
    // Quotes and hex digits are always a valid header value.
    HeaderValue::from_bytes(&etag).unwrap_or(HeaderValue::from_static("\"\""))
}

fn build(status: StatusCode, etag: HeaderValue, content_range: Option<String>, len: u64, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag);
    if status != StatusCode::NOT_MODIFIED {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    resp
}

fn unsatisfiable(size: u64) -> Response {
    let mut resp = ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("requested range is outside the zip (size {size} bytes)"))
        .into_response_with_range(size);
    resp.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp
}

impl ApiError {
    fn into_response_with_range(self, size: u64) -> Response {
        let mut resp = axum::response::IntoResponse::into_response(self);
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        resp
    }
}

fn header_is(headers: &HeaderMap, name: header::HeaderName, etag: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")).unwrap_or(false)
}

/// `If-Range` with anything but our strong ETag means "send it all".
fn range_applies(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.trim() == etag,
    }
}

/// What a `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// One satisfiable `bytes=` range, as inclusive (start, end).
    One(u64, u64),
    /// A well-formed range that lies outside the zip: `416`.
    Unsatisfiable,
    /// Malformed, another unit, or several ranges: ignored, the whole zip is
    /// sent (RFC 9110 lets a server ignore any `Range` it does not support).
    Ignored,
}

pub fn parse_range(spec: &str, size: u64) -> RangeSpec {
    let Some(spec) = spec.trim().strip_prefix("bytes=") else { return RangeSpec::Ignored };
    if spec.contains(',') {
        return RangeSpec::Ignored;
    }
    let Some((a, b)) = spec.split_once('-') else { return RangeSpec::Ignored };
    let (a, b) = (a.trim(), b.trim());
    let number = |s: &str| -> Option<u64> { (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok()).flatten() };
    if a.is_empty() {
        // A suffix: the last `n` bytes.
        return match number(b) {
            None => RangeSpec::Ignored,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::One(size.saturating_sub(n), size - 1),
        };
    }
    let Some(start) = number(a) else { return RangeSpec::Ignored };
    let end = if b.is_empty() {
        None
    } else {
        match number(b) {
            Some(end) if end >= start => Some(end),
            _ => return RangeSpec::Ignored,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::One(start, end.map_or(size - 1, |e| e.min(size - 1)))
}

#[cfg(test)]
mod tests {
    use super::{parse_range, read_chunk, RangeSpec::*};

    #[test]
    fn a_chunk_is_exactly_the_bytes_asked_for_and_a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(read_chunk(&file, 0, 262_144).unwrap(), data[..262_144]);
        assert_eq!(read_chunk(&file, 262_144, 37_856).unwrap(), data[262_144..]);
        assert_eq!(read_chunk(&file, 17, 3).unwrap(), data[17..20]);
        let short = read_chunk(&file, 299_990, 20).unwrap_err();
        assert_eq!(short.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), One(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), One(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), One(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), One(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), One(50, 99));
        assert_eq!(parse_range(" bytes=0-0", 100), One(0, 0));
    }

    #[test]
    fn ranges_outside_the_zip_are_unsatisfiable() {
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn malformed_and_multi_ranges_are_ignored() {
        for spec in
            ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-x", "bytes=+1-2", "bytes=--5", "0-5"]
        {
            assert_eq!(parse_range(spec, 100), Ignored, "{spec}");
        }
    }
}
