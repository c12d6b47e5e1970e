use crate::common::{config, module, reply, upstream, Fake};
use axum::body::Body;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use upstream::{Error, Upstream};

const LIMIT: u64 = 64 << 20;

fn zip_bytes() -> Vec<u8> {
    (0..(3 << 20)).map(|i: u32| (i % 251) as u8).collect()
}

/// A streamed body (no Content-Length): the first `chunks` 64 KiB pieces of `zip_bytes`.
fn streamed(chunks: usize) -> Body {
    let data = Bytes::from(zip_bytes());
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..chunks).map(|i| Ok(data.slice(i * 65536..(i + 1) * 65536))).collect();
    Body::from_stream(stream::iter(pieces))
}

#[tokio::test]
async fn download_streams_the_body_into_a_file() {
    let fake = Fake::start(|| reply(200, zip_bytes())).await;
    let up = upstream(&fake.base);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.0.0.zip");
    let mut file = tokio::fs::File::create(&path).await.unwrap();

    let got = up.download(&module("example.com/m"), "@v/v1.0.0.zip", LIMIT, &mut file).await.unwrap();
    file.shutdown().await.unwrap();

    assert_eq!(got.bytes, 3 << 20);
    assert_eq!(got.source, fake.base);
    assert_eq!(std::fs::read(&path).unwrap(), zip_bytes());
}

#[tokio::test]
async fn download_falls_through_before_the_first_byte() {
    let missing = Fake::answering(404, "not found").await;
    let good = Fake::start(|| reply(200, "zip")).await;
    let up = upstream(&format!("{},{}", missing.base, good.base));
    let mut sink = Vec::new();

    let got = up.download(&module("example.com/m"), "@v/v1.0.0.zip", LIMIT, &mut sink).await.unwrap();

    assert_eq!((got.bytes, &sink[..]), (3, &b"zip"[..]));
    assert_eq!(got.source, good.base);
}

#[tokio::test]
async fn a_download_that_breaks_off_does_not_try_the_next_proxy() {
    let wrote = Arc::new(Notify::new());
    let gate = wrote.clone();
    let broken = Fake::start(move || {
        let gate = gate.clone();
        let failure = stream::once(async move {
            gate.notified().await;
            Err(std::io::Error::other("upstream died"))
        });
        reply(200, Body::from_stream(streamed(4).into_data_stream().map(|c| c.map_err(std::io::Error::other)).chain(failure)))
    })
    .await;
    let good = Fake::start(|| reply(200, "zip")).await;
    let up = upstream(&format!("{}|{}", broken.base, good.base));
    let mut sink = NotifyingSink { data: Vec::new(), wrote };

    let err = up.download(&module("example.com/m"), "@v/v1.0.0.zip", LIMIT, &mut sink).await.unwrap_err();

    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert!(!sink.data.is_empty(), "partial data reached the sink");
    assert_eq!(good.hits(), 0);
}

/// A sink that tells the fake upstream when the first bytes arrived, so it
/// breaks the body off only after the client has written some of it.
struct NotifyingSink {
    data: Vec<u8>,
    wrote: Arc<Notify>,
}

impl AsyncWrite for NotifyingSink {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.wrote.notify_one();
        Pin::new(&mut self.data).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.data).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.data).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_stalled_download_times_out_between_chunks() {
    let stalled = Fake::start(|| reply(200, Body::from_stream(streamed(2).into_data_stream().chain(stream::pending())))).await;
    let good = Fake::start(|| reply(200, "zip")).await;
    let mut cfg = config(&format!("{}|{}", stalled.base, good.base));
    cfg.read_timeout = Duration::from_millis(300);
    let up = Upstream::new(cfg).unwrap();
    let mut sink = Vec::new();

    let err = up.download(&module("example.com/m"), "@v/v1.0.0.zip", LIMIT, &mut sink).await.unwrap_err();

    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(sink.len(), 2 * 65536);
    assert_eq!(good.hits(), 0);
}

#[tokio::test]
async fn a_download_over_the_limit_is_refused() {
    let m = module("example.com/m");
    let announced = Fake::start(|| reply(200, zip_bytes())).await;
    let mut sink = Vec::new();
    let err = upstream(&announced.base).download(&m, "@v/v1.0.0.zip", 1 << 20, &mut sink).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 1048576, .. }), "{err:?}");
    assert!(sink.is_empty(), "Content-Length over the limit is refused before writing");

    let chunked = Fake::start(|| reply(200, streamed(48))).await;
    let err = upstream(&chunked.base).download(&m, "@v/v1.0.0.zip", 1 << 20, &mut sink).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    assert!(sink.len() <= 1 << 20);
}
