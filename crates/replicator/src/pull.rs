//! Pulling one blob from a peer: resumable from the bytes already in the
//! blob's partial file, throttled, hashed while it streams, and committed
//! only when every byte matches the sha256 the catalog names.

use std::io::SeekFrom;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use proto::FetchRequest;
use sha2::Digest;
use store::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tonic::{Code, Request};

use crate::inner::Inner;
use crate::{Error, Result};

/// Where a pulled blob came from.
pub(crate) struct Pulled {
    pub from: u64,
    pub bytes: u64,
}

/// Copies blob `sha` (`size` bytes) from the first peer that has it.
pub(crate) async fn pull(inner: &Inner, sha: Sha256, size: u64) -> Result<Pulled> {
    let path = inner.blobs.partial_path(&sha);
    // A pull starts only when the rest of the blob fits and leaves the
    // reserve for the catalog and the raft log: a full disk defers
    // replication (retried with backoff) instead of starving raft.
    let have = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
    if let Err(why) = inner.blobs.check_space(size.saturating_sub(have)) {
        return Err(Error::DiskFull(why));
    }
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .await
        .map_err(|e| Error::io("cannot open ", &path, e))?;
    let mut offset = file.metadata().await.map_err(|e| Error::io("", &path, e))?.len();
    if offset > size {
        tracing::warn!(blob = %sha, offset, size, "partial file is longer than the blob; starting over");
        offset = 0;
    }
    file.set_len(offset).await.map_err(|e| Error::io("", &path, e))?;
    let mut hasher = sha2::Sha256::new();
    if offset > 0 {
        hash_prefix(&mut file, offset, &mut hasher).await.map_err(|e| Error::io("re-reading ", &path, e))?;
        inner.stats.resumed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(blob = %sha, offset, size, "resuming blob transfer");
    }
    file.seek(SeekFrom::Start(offset)).await.map_err(|e| Error::io("", &path, e))?;

    let mut errors = Vec::new();
    let mut source = None;
    for peer in inner.sources(&sha) {
        if offset == size {
            break;
        }
        match fetch_from(inner, peer, &sha, size, &mut offset, &mut file, &mut hasher).await {
            Ok(()) => {
                source = Some(peer);
                break;
            }
            Err(e) => errors.push(format!("node {peer}: {e}")),
        }
    }
    file.flush().await.map_err(|e| Error::io("", &path, e))?;
    drop(file);
    if offset < size {
        let tried = if errors.is_empty() { "no peer to ask".to_string() } else { errors.join("; ") };
        return Err(Error::Incomplete { have: offset, size, tried });
    }
    let actual = Sha256(hasher.finalize().into());
    if actual != sha {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(Error::Mismatch { size, actual });
    }
    let blobs = inner.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.commit_file(&path, &sha, Some(actual)))
        .await
        .map_err(|e| Error::task("commit", e))?
        .map_err(|e| Error::store("storing the blob", e))?;
    Ok(Pulled { from: source.unwrap_or(0), bytes: size })
}

async fn hash_prefix(file: &mut tokio::fs::File, len: u64, hasher: &mut sha2::Sha256) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0)).await?;
    let mut remaining = len;
    let mut buf = vec![0u8; 1 << 20];
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "partial file shrank"));
        }
        hasher.update(&buf[..n]);
        remaining -= n as u64;
    }
    Ok(())
}

/// Streams the rest of the blob from `peer` into `file`, advancing `offset`
/// by every byte written, so a failure part-way keeps what arrived.
async fn fetch_from(
    inner: &Inner,
    peer: u64,
    sha: &Sha256,
    size: u64,
    offset: &mut u64,
    file: &mut tokio::fs::File,
    hasher: &mut sha2::Sha256,
) -> Result<()> {
    let mut client = inner.client(peer)?;
    let mut request = Request::new(FetchRequest { from: inner.me, sha256: sha.to_hex(), offset: *offset });
    inner.auth.stamp(&mut request);
    // A frozen peer must not hold a pull (and a client waiting on it) for
    // long: the answer and every chunk have to arrive within CHUNK_IDLE.
    let mut stream = match tokio::time::timeout(CHUNK_IDLE, client.fetch(request)).await {
        Err(_) => return Err(Error::Peer(format!("no answer within {CHUNK_IDLE:?}"))),
        Ok(Ok(resp)) => resp.into_inner(),
        Ok(Err(status)) if status.code() == Code::NotFound => return Err(Error::Peer("does not have it".into())),
        Ok(Err(status)) => return Err(Error::Peer(format!("{}: {}", code_name(status.code()), status.message()))),
    };
    loop {
        let chunk = match tokio::time::timeout(CHUNK_IDLE, stream.next()).await {
            Err(_) => return Err(Error::Peer(format!("transfer stalled at byte {offset}: nothing for {CHUNK_IDLE:?}"))),
            Ok(None) => break,
            Ok(Some(chunk)) => chunk,
        };
        let chunk = chunk.map_err(|s| Error::Peer(format!("transfer broke at byte {offset}: {}", s.message())))?;
        if chunk.offset != *offset {
            return Err(Error::Peer(format!("sent bytes from offset {} when {offset} was expected", chunk.offset)));
        }
        let n = chunk.data.len() as u64;
        if *offset + n > size {
            return Err(Error::Peer(format!("sent more than the {size} bytes the catalog records")));
        }
        inner.throttle.take(n).await;
        file.write_all(&chunk.data).await.map_err(|e| Error::io("writing ", &inner.blobs.partial_path(sha), e))?;
        hasher.update(&chunk.data);
        *offset += n;
        inner.stats.received.fetch_add(n, Ordering::Relaxed);
    }
    if *offset < size {
        return Err(Error::Peer(format!("stream ended at byte {offset} of {size}")));
    }
    Ok(())
}

/// The longest a pull waits for a peer's answer or its next chunk.
const CHUNK_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Unavailable => "unreachable",
        Code::Unauthenticated => "refused our cluster secret",
        Code::FailedPrecondition => "refused (another cluster?)",
        Code::PermissionDenied => "does not know this node",
        Code::OutOfRange => "refused the offset",
        _ => "failed",
    }
}
