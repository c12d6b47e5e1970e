//! A minimal HTTP/1.1 client that sends the request path byte for byte (no
//! normalisation of `..` or `%2e`, no redirects, no decompression), which is
//! what malformed-input tests need. It reports a body shorter than its
//! `Content-Length`, or a chunked body without its last chunk, as an error,
//! so a truncated download can never pass for a complete one.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The body as text (lossy), for assertions and messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `STATUS content-type: body` with the body cut to 300 bytes, for
    /// assertion messages.
    pub fn summary(&self) -> String {
        let text = self.text();
        let cut: String = text.chars().take(300).collect();
        format!("{} [{}] {:?}", self.status, self.content_type(), cut)
    }
}

/// Sends `GET path` to `addr` and reads the whole response.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    get_with_timeout(addr, path, Duration::from_secs(120))
}

/// [`get`] with a read timeout.
pub fn get_with_timeout(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: flotilla-e2e\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let status = read_status(&mut reader)?;
    let headers = read_headers(&mut reader)?;
    let mut response = Response { status, headers, body: Vec::new() };
    response.body = read_body(&mut reader, &response)?;
    Ok(response)
}

/// One keep-alive HTTP/1.1 connection that sends request after request, as
/// the go command does.
pub struct KeepAlive {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> io::Result<KeepAlive> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(KeepAlive { addr, reader: BufReader::new(stream) })
    }

    /// Sends `METHOD path` on this connection and reads the whole response
    /// (no body for `HEAD`).
    pub fn request(&mut self, method: &str, path: &str, extra_headers: &[(&str, &str)]) -> io::Result<Response> {
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: flotilla-e2e\r\nAccept-Encoding: identity\r\n", self.addr);
        for (name, value) in extra_headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.reader.get_mut().write_all(request.as_bytes())?;
        let status = read_status(&mut self.reader)?;
        let headers = read_headers(&mut self.reader)?;
        let mut response = Response { status, headers, body: Vec::new() };
        if method != "HEAD" && status != 304 {
            response.body = read_body(&mut self.reader, &response)?;
        }
        Ok(response)
    }

    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[])
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the response head ended"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_status(reader: &mut impl BufRead) -> io::Result<u16> {
    let line = read_line(reader)?;
    let mut parts = line.splitn(3, ' ');
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/1.") => Ok(code),
        _ => Err(invalid(format!("bad status line {line:?}"))),
    }
}

fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

fn read_body(reader: &mut impl BufRead, head: &Response) -> io::Result<Vec<u8>> {
    let chunked = head.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        return read_chunked(reader);
    }
    let mut body = Vec::new();
    match head.header("content-length") {
        Some(len) => {
            let len: u64 = len.parse().map_err(|_| invalid(format!("bad content-length {len:?}")))?;
            reader.take(len).read_to_end(&mut body)?;
            if body.len() as u64 != len {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("body ended after {} of {len} bytes", body.len())));
            }
        }
        None => {
            reader.read_to_end(&mut body)?;
        }
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}
