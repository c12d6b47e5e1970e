use std::io::{IoSlice, Write};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{bytes_sent, locate, map, ZeroCopyTcp};

fn file_with(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("blob");
    std::fs::File::create(&path).and_then(|mut f| f.write_all(content)).expect("write blob");
    (dir, path)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A connected pair: the server end wrapped as the gateway wraps it.
async fn pair() -> (ZeroCopyTcp, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    (ZeroCopyTcp::new(server), client)
}

/// Writes `head` then `body` the way hyper does: one vectored write of
/// what is left, again and again.
async fn write_like_hyper(conn: &mut ZeroCopyTcp, head: &[u8], body: &Bytes) -> std::io::Result<()> {
    let (mut head_at, mut body_at) = (0, 0);
    while head_at < head.len() || body_at < body.len() {
        // An empty leading slice is passed on as it is: it must not stop the body.
        let slices = [IoSlice::new(&head[head_at..]), IoSlice::new(&body[body_at..])];
        let n = conn.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len() - head_at);
        head_at += from_head;
        body_at += n - from_head;
    }
    conn.flush().await
}

#[test]
fn a_slice_of_a_mapped_file_is_found_at_its_offset_and_other_memory_is_not() {
    let content = pattern(1 << 20);
    let (_dir, path) = file_with(&content);
    let body = map(std::fs::File::open(&path).expect("open"), content.len() as u64).expect("map");
    assert!(body == content, "the mapping is the file");
    let (_, offset) = locate(&body[4096..8192]).expect("a slice of the mapping is located");
    assert_eq!(offset, 4096);
    assert!(locate(&content[..]).is_none(), "ordinary memory is not a mapped file");
    let tail = body.slice(1000..);
    assert_eq!(locate(&tail).map(|(_, at)| at), Some(1000), "a sliced body keeps its file offset");
}

#[tokio::test]
async fn a_mapped_body_goes_out_with_sendfile_after_ordinary_headers() {
    let content = pattern(3 << 20);
    let (_dir, path) = file_with(&content);
    let body = map(std::fs::File::open(&path).expect("open"), content.len() as u64).expect("map");
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 3145728\r\n\r\n".to_vec();
    let (mut server, mut client) = pair().await;
    let before = bytes_sent();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.map(|_| got)
    });
    write_like_hyper(&mut server, &head, &body).await.expect("send");
    server.shutdown().await.expect("shutdown");
    drop(server);
    let got = reader.await.expect("reader").expect("read");
    assert_eq!(got.len(), head.len() + content.len());
    assert!(got[..head.len()] == head[..], "headers first, as written");
    assert!(got[head.len()..] == content[..], "the body is the file's bytes");
    assert!(bytes_sent() - before >= content.len() as u64, "the body went out with sendfile");
}

#[tokio::test]
async fn ordinary_bytes_are_written_as_they_are() {
    let (mut server, mut client) = pair().await;
    let body = Bytes::from(pattern(200_000));
    let expected = body.clone();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.map(|_| got)
    });
    write_like_hyper(&mut server, b"head\r\n", &body).await.expect("send");
    drop(server);
    let got = reader.await.expect("reader").expect("read");
    assert!(got[..6] == b"head\r\n"[..] && got[6..] == expected[..]);
}

/// A blob file cut short behind the store's back (by hand, a failing
/// disk) ends the response with an error: no crash, no made-up bytes.
#[tokio::test]
async fn a_file_truncated_while_mapped_ends_the_response_with_an_error() {
    let content = pattern(2 << 20);
    let (_dir, path) = file_with(&content);
    let body = map(std::fs::File::open(&path).expect("open"), content.len() as u64).expect("map");
    std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(1 << 20)).expect("truncate");
    let (mut server, mut client) = pair().await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.map(|_| got)
    });
    let err = write_like_hyper(&mut server, b"", &body).await.expect_err("a short file cannot be sent whole");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    drop(server);
    let got = reader.await.expect("reader").expect("read");
    assert!(got.len() <= 1 << 20 && got[..] == content[..got.len()], "only the file's real bytes were sent ({} bytes)", got.len());
}
