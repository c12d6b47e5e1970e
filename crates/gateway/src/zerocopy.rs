//! Large zips sent by the kernel (`sendfile`), not copied through the
//! process.
//!
//! hyper owns the connection and writes whatever bytes a response body
//! yields, so a zero-copy path has to live below it, in the socket it writes
//! to. The body of a large zip is the blob file mapped into memory
//! ([`map`]): the bytes hyper hands back to the socket are then, by their
//! address, a known range of a known file. [`ZeroCopyTcp`], the socket every
//! gateway connection writes through, recognises such a range and sends it
//! with `sendfile(2)` from the page cache; anything else (headers, small
//! zips, metadata) is written as usual.
//!
//! The mapped pages are never read by the process on this path, so a blob
//! file that shrank or a failing disk ends the response with an error from
//! `sendfile` (the client sees a short body and retries), not a `SIGBUS`.
//! Should some layer copy the body instead (it would have to be read through
//! the mapping), the client still gets the right bytes: the mapping is the
//! file. Blob files are never rewritten in place (content addressed, written
//! once under a temporary name), which is what makes mapping them sound.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The most one `sendfile` call sends, so one client's 100 MiB zip does not
/// hold a runtime thread for long when the socket buffer is large.
const MAX_SEND: usize = 4 << 20;

/// Request extension set on connections that write through [`ZeroCopyTcp`]:
/// only there is a mapped body worth more than a streamed one.
#[derive(Clone, Copy, Debug)]
pub struct ZeroCopy;

/// Mapped files by the address their mapping starts at. Every write of a
/// gateway connection looks here while any mapping exists, so lookups
/// share the lock; only mapping and unmapping take it alone.
static REGIONS: RwLock<BTreeMap<usize, Region>> = RwLock::new(BTreeMap::new());
/// How many mappings exist, so connections skip the lookup when none does.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Bytes sent with `sendfile` since start (`flotilla_zero_copy_bytes_total`).
static SENT: AtomicU64 = AtomicU64::new(0);

struct Region {
    end: usize,
    file: Arc<File>,
}

/// Bytes this process has sent with `sendfile` since it started.
pub fn bytes_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// The first `len` bytes of `file` as a body that [`ZeroCopyTcp`] sends
/// with `sendfile`. Mapping reads nothing; only the address range is
/// reserved.
pub fn map(file: File, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: a mapping is unsound only if the file changes under it. Blob
    // files are content addressed and never written after the rename that
    // publishes them; quarantine renames and GC unlinks, neither of which
    // touches a mapping. On the path this exists for, the process never
    // reads the pages at all (the kernel's sendfile does, see the module
    // docs), so even an outside truncation surfaces as a short send.
    #[allow(unsafe_code)]
    let mapping = unsafe { memmap2::MmapOptions::new().len(len).map(&file)? };
    let start = mapping.as_ptr() as usize;
    REGIONS.write().insert(start, Region { end: start + len, file: Arc::new(file) });
    LIVE.fetch_add(1, Ordering::Relaxed);
    Ok(Bytes::from_owner(Mapped { mapping, start }))
}

/// Owns a mapping; unregisters it before it is unmapped, so an address the
/// kernel hands out again is never taken for this file.
struct Mapped {
    mapping: memmap2::Mmap,
    start: usize,
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.mapping
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        REGIONS.write().remove(&self.start);
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where `buf` lies in a mapped file: the file and the offset of its first byte.
pub(crate) fn locate(buf: &[u8]) -> Option<(Arc<File>, u64)> {
    if buf.is_empty() || LIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let at = buf.as_ptr() as usize;
    let regions = REGIONS.read();
    let (&start, region) = regions.range(..=at).next_back()?;
    (at + buf.len() <= region.end).then(|| (region.file.clone(), (at - start) as u64))
}

/// A gateway connection's socket: bytes of a [`map`]ped zip go out with
/// `sendfile`, everything else with ordinary writes.
pub struct ZeroCopyTcp {
    tcp: TcpStream,
}

impl ZeroCopyTcp {
    pub fn new(tcp: TcpStream) -> Self {
        ZeroCopyTcp { tcp }
    }

    fn poll_sendfile(&self, cx: &mut Context<'_>, file: &File, offset: u64, len: usize) -> Poll<io::Result<usize>> {
        let sent = ready!(self.poll_writable(cx, || {
            let mut at = offset;
            rustix::fs::sendfile(&self.tcp, file, Some(&mut at), len.min(MAX_SEND))
        }))?;
        if sent == 0 {
            // The file ended before its mapping did: it was truncated behind
            // the store's back. The response cannot be finished.
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the zip file is shorter than when it was opened")));
        }
        SENT.fetch_add(sent as u64, Ordering::Relaxed);
        Poll::Ready(Ok(sent))
    }

    /// Writes `bufs` (a response's headers) marked as not the end
    /// (`MSG_MORE`): the kernel holds them back until the body that
    /// `sendfile` sends next, so both leave in one segment, not two.
    fn poll_send_more(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        use rustix::net::{sendmsg, SendAncillaryBuffer, SendFlags};
        self.poll_writable(cx, || sendmsg(&self.tcp, bufs, &mut SendAncillaryBuffer::default(), SendFlags::MORE | SendFlags::NOSIGNAL))
    }

    /// Runs the non-blocking `write` once the socket is writable, again
    /// whenever it would block.
    fn poll_writable(&self, cx: &mut Context<'_>, mut write: impl FnMut() -> rustix::io::Result<usize>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self.tcp.try_io(Interest::WRITABLE, || write().map_err(io::Error::from)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncRead for ZeroCopyTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// Writes the slices before the first mapped one as usual (a response's
    /// headers), or, when the first slice is mapped, sends it from its file.
    /// A short write is normal: hyper calls again with what is left.
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        for (i, buf) in bufs.iter().enumerate() {
            if let Some((file, offset)) = locate(buf) {
                // (Empty slices before it are nothing to write: a zero-byte
                // write would read as "connection closed" to hyper.)
                if bufs[..i].iter().any(|b| !b.is_empty()) {
                    return this.poll_send_more(cx, &bufs[..i]);
                }
                return this.poll_sendfile(cx, &file, offset, buf.len());
            }
        }
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "zerocopy_tests.rs"]
mod tests;
