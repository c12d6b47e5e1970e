//! The `flotilla.v1.Blobs` service of this node: serves verified blobs to
//! peers in chunks straight from the file, and, on the primary, turns
//! peers' placement reports into raft entries.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::Stream;
use proto::{Chunk, FetchRequest, ReportReply, ReportRequest, StatReply, StatRequest};
use raft::ProposeError;
use store::{OpenBlob, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::{Request, Response, Status};

use crate::inner::Inner;

/// Size of the chunks a blob is streamed in (as the gateway's zip bodies).
pub const CHUNK: usize = 256 * 1024;
/// Shas accepted in one report.
pub(crate) const MAX_REPORT: usize = 10_000;

pub struct BlobService {
    pub(crate) inner: Arc<Inner>,
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, Status>> + Send>>;

fn parse_sha(text: &str) -> Result<Sha256, Status> {
    text.parse().map_err(|_| Status::invalid_argument(format!("{text:?} is not a sha256 (64 lowercase hex digits)")))
}

impl BlobService {
    /// Opens a verified copy of `sha`; a corrupt one is quarantined, queued
    /// for repair and reported as absent.
    async fn open(&self, sha: Sha256) -> Result<Option<OpenBlob>, Status> {
        let blobs = self.inner.blobs.clone();
        let opened = tokio::task::spawn_blocking(move || blobs.open(&sha))
            .await
            .map_err(|e| Status::internal(format!("blob open task failed: {e}")))?;
        match opened {
            Ok(blob) => Ok(blob),
            Err(store::Error::Corrupt { .. }) => {
                self.inner.corrupt(sha);
                Ok(None)
            }
            Err(e) => Err(Status::internal(format!("reading blob {sha}: {e}"))),
        }
    }
}

#[tonic::async_trait]
impl proto::Blobs for BlobService {
    async fn stat(&self, request: Request<StatRequest>) -> Result<Response<StatReply>, Status> {
        self.inner.auth.admit(&request, request.get_ref().from, "Stat")?;
        let sha = parse_sha(&request.get_ref().sha256)?;
        let reply = match self.open(sha).await? {
            Some(blob) => StatReply { present: true, size: blob.len },
            None => StatReply { present: false, size: 0 },
        };
        Ok(Response::new(reply))
    }

    type FetchStream = ChunkStream;

    async fn fetch(&self, request: Request<FetchRequest>) -> Result<Response<ChunkStream>, Status> {
        let from = request.get_ref().from;
        self.inner.auth.admit(&request, from, "Fetch")?;
        let sha = parse_sha(&request.get_ref().sha256)?;
        let offset = request.get_ref().offset;
        let Some(blob) = self.open(sha).await? else {
            return Err(Status::not_found(format!("node {} does not hold a verified copy of blob {sha}", self.inner.me)));
        };
        if offset > blob.len {
            return Err(Status::out_of_range(format!("offset {offset} is beyond the end of blob {sha} ({} bytes)", blob.len)));
        }
        tracing::debug!(blob = %sha, to = from, offset, size = blob.len, "serving blob");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = stream_file(&inner, blob, offset, &tx).await {
                let _ = tx.send(Err(Status::internal(format!("reading blob {sha}: {e}")))).await;
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as ChunkStream))
    }

    async fn report(&self, request: Request<ReportRequest>) -> Result<Response<ReportReply>, Status> {
        let from = request.get_ref().from;
        self.inner.auth.admit(&request, from, "Report")?;
        let (shas, lost) = (&request.get_ref().sha256, &request.get_ref().lost);
        if shas.len() + lost.len() > MAX_REPORT {
            return Err(Status::invalid_argument(format!("at most {MAX_REPORT} blobs per report, not {}", shas.len() + lost.len())));
        }
        let parse = |list: &[String]| list.iter().map(|sha| parse_sha(sha)).collect::<Result<Vec<_>, Status>>();
        let (shas, lost) = (parse(shas)?, parse(lost)?);
        let control = &self.inner.control;
        if !control.is_acting_primary() {
            let leader = control.leader().map_or("unknown".to_string(), |l| format!("node {l}"));
            return Err(Status::failed_precondition(format!(
                "node {} is not the primary (primary: {leader}); report placement there",
                self.inner.me
            )));
        }
        match crate::placement::propose_placement(control, from, lost, shas).await {
            Ok(index) => Ok(Response::new(ReportReply { index })),
            Err(ProposeError::NotLeader { .. }) => Err(Status::failed_precondition("stopped being the primary; retry")),
            Err(e) => Err(Status::unavailable(format!("placement did not commit: {e}"))),
        }
    }
}

async fn stream_file(
    inner: &Inner,
    blob: OpenBlob,
    offset: u64,
    tx: &tokio::sync::mpsc::Sender<Result<Chunk, Status>>,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::from_std(blob.file);
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut position = offset;
    while position < blob.len {
        let want = ((blob.len - position) as usize).min(CHUNK);
        let mut data = vec![0u8; want];
        file.read_exact(&mut data).await?;
        let n = data.len() as u64;
        if tx.send(Ok(Chunk { offset: position, data })).await.is_err() {
            return Ok(()); // the peer went away
        }
        inner.stats.sent.fetch_add(n, Ordering::Relaxed);
        position += n;
    }
    Ok(())
}
