//! Serving a stored zip: streamed from disk (never whole in memory) with
//! Content-Length, a strong ETag (the sha256), `Range`/`If-Range` and
//! `If-None-Match`.

use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use store::{OpenBlob, ZipRef};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::proxy::IMMUTABLE;
use crate::{ApiError, AppState};

const CHUNK: usize = 256 * 1024;

/// Opens the blob of `zip`, verifying it if this node has not yet. A corrupt
/// blob is quarantined by the store and reported as an error here.
pub async fn open(state: &Arc<AppState>, zip: &ZipRef) -> Result<Option<OpenBlob>, ApiError> {
    let sha = zip.sha().map_err(|e| ApiError::internal(format!("catalog entry: {e}")))?;
    let blobs = state.store.blobs.clone();
    let opened = tokio::task::spawn_blocking(move || blobs.open(&sha))
        .await
        .map_err(|e| ApiError::internal(format!("blob open task failed: {e}")))?;
    match opened {
        Ok(blob) => Ok(blob),
        Err(e @ store::Error::Corrupt { .. }) => {
            state.metrics.corrupt_blobs.inc();
            state.cluster.blob_corrupt(sha);
            Err(ApiError::internal(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn respond(zip: &ZipRef, blob: OpenBlob, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", zip.sha256);
    if header_is(headers, header::IF_NONE_MATCH, &etag) {
        return build(StatusCode::NOT_MODIFIED, &etag, None, 0, Body::empty());
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(spec) if range_applies(headers, &etag) => match parse_range(spec, blob.len) {
            Some(r) => Some(r),
            None => return unsatisfiable(blob.len),
        },
        _ => None,
    };
    let (start, len) = range.map(|(s, e)| (s, e - s + 1)).unwrap_or((0, blob.len));
    let body = Body::from_stream(stream_file(blob, start, len));
    match range {
        Some((s, e)) => build(StatusCode::PARTIAL_CONTENT, &etag, Some(format!("bytes {s}-{e}/{}", zip.size)), len, body),
        None => build(StatusCode::OK, &etag, None, len, body),
    }
}

fn stream_file(blob: OpenBlob, start: u64, len: u64) -> ReaderStream<tokio::io::Take<tokio::fs::File>> {
    let mut file = blob.file;
    // lseek on a regular file never blocks; a failure shows up as a short body.
    if let Err(e) = file.seek(SeekFrom::Start(start)) {
        tracing::warn!(error = %e, "seek in blob failed");
    }
    ReaderStream::with_capacity(tokio::fs::File::from_std(file).take(len), CHUNK)
}

fn build(status: StatusCode, etag: &str, content_range: Option<String>, len: u64, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
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

/// One `bytes=` range, as inclusive (start, end). `None`: unsatisfiable or
/// malformed (answered 416; multi-range is not supported).
pub fn parse_range(spec: &str, size: u64) -> Option<(u64, u64)> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        return Some((size.saturating_sub(n), size - 1));
    }
    let start: u64 = a.parse().ok()?;
    if start >= size {
        return None;
    }
    let end = if b.is_empty() { size - 1 } else { b.parse::<u64>().ok()?.min(size - 1) };
    (end >= start).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=-0", 100), None);
    }
}
