//! One HTTP request to one proxy: TLS roots, deadlines, size caps, and the
//! translation of statuses and transport failures into [`Error`].

use crate::chain::Base;
use crate::{Config, Error, Result};
use bytes::{Bytes, BytesMut};
use reqwest::{redirect, Certificate, Response};
use std::error::Error as _;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Upstream error bodies are kept to one line of this many characters.
const BODY_SNIPPET: usize = 200;
/// How much of an error body is read to find its first line.
const BODY_PEEK: usize = 4096;
/// The go command's redirect limit.
const MAX_REDIRECTS: usize = 10;

pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
    read_timeout: Duration,
}

/// A request URL, and the same URL with credentials masked for messages.
pub(crate) struct Target {
    url: String,
    shown: String,
}

impl Target {
    pub fn new(base: &Base, path: &str) -> Target {
        Target { url: format!("{}/{path}", base.url), shown: format!("{}/{path}", base.masked) }
    }

    /// An absolute URL carrying no credentials.
    pub fn url(url: &str) -> Target {
        Target { url: url.to_string(), shown: url.to_string() }
    }
}

impl Http {
    pub fn new(cfg: &Config) -> Result<Http> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .connect_timeout(cfg.connect_timeout)
            .user_agent(cfg.user_agent.as_str())
            .redirect(redirect_policy());
        if let Some(path) = &cfg.ca_file {
            for cert in load_ca_bundle(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| Error::Config(format!("cannot build the upstream HTTP client: {}", explain(e))))?;
        Ok(Http { client, timeout: cfg.timeout, read_timeout: cfg.read_timeout })
    }

    /// GETs `url` once (for `flotillactl doctor`): any HTTP answer means
    /// DNS, TCP and TLS worked; the status, or the client's error
    /// ([`explain`] says it with its causes).
    pub async fn probe(&self, url: &str, timeout: Duration) -> std::result::Result<u16, reqwest::Error> {
        Ok(self.client.get(url).timeout(timeout).send().await?.status().as_u16())
    }

    /// GETs `target` and reads the whole body, at most `limit` bytes, all
    /// within the metadata deadline.
    pub async fn fetch(&self, target: &Target, limit: u64) -> Result<Bytes> {
        let work = async {
            let resp = self.send(target).await?;
            read_capped(resp, target, limit).await
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| timed_out(target))?
    }

    /// GETs `target` and writes the body to `sink` chunk by chunk, counting
    /// what was written in `written` so the caller knows whether the sink
    /// holds partial data when this fails.
    pub async fn stream(&self, target: &Target, limit: u64, sink: &mut (dyn AsyncWrite + Unpin + Send), written: &mut u64) -> Result<()> {
        let mut resp = tokio::time::timeout(self.timeout, self.send(target)).await.map_err(|_| timed_out(target))??;
        check_length(&resp, target, limit)?;
        loop {
            let chunk = tokio::time::timeout(self.read_timeout, resp.chunk())
                .await
                .map_err(|_| timed_out(target))?
                .map_err(|e| transport(e, target))?;
            let Some(chunk) = chunk else { break };
            if *written + chunk.len() as u64 > limit {
                return Err(too_large(target, limit));
            }
            sink.write_all(&chunk).await?;
            *written += chunk.len() as u64;
        }
        sink.flush().await?;
        Ok(())
    }

    async fn send(&self, target: &Target) -> Result<Response> {
        tracing::debug!(url = %target.shown, "upstream request");
        let resp = self.client.get(&target.url).send().await.map_err(|e| transport(e, target))?;
        let status = resp.status().as_u16();
        if status == 200 {
            return Ok(resp);
        }
        let url = target.shown.clone();
        let body = first_line(resp).await;
        Err(match status {
            404 | 410 => Error::NotFound { url, status, body },
            _ => Error::Status { url, status, body },
        })
    }
}

fn load_ca_bundle(path: &Path) -> Result<Vec<Certificate>> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| Error::Config(format!("upstream.ca_file {shown}: cannot read it: {e}")))?;
    let certs = Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("upstream.ca_file {shown}: not a PEM bundle: {}", explain(e))))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("upstream.ca_file {shown}: contains no PEM certificate (expected -----BEGIN CERTIFICATE-----)")));
    }
    Ok(certs)
}

/// Follows redirects like the go command: at most 10, never https → http.
fn redirect_policy() -> redirect::Policy {
    redirect::Policy::custom(|attempt| {
        let from_https = attempt.previous().last().is_some_and(|u| u.scheme() == "https");
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(format!("stopped after {MAX_REDIRECTS} redirects"))
        } else if from_https && attempt.url().scheme() == "http" {
            let to = attempt.url().clone();
            attempt.error(format!("redirected from a secure URL to insecure URL {to}"))
        } else {
            attempt.follow()
        }
    })
}

async fn read_capped(mut resp: Response, target: &Target, limit: u64) -> Result<Bytes> {
    check_length(&resp, target, limit)?;
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(e, target))? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large(target, limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn check_length(resp: &Response, target: &Target, limit: u64) -> Result<()> {
    match resp.content_length() {
        Some(len) if len > limit => Err(too_large(target, limit)),
        _ => Ok(()),
    }
}

/// The first line of an error body, at most [`BODY_SNIPPET`] characters.
async fn first_line(mut resp: Response) -> String {
    let mut peek = Vec::new();
    while peek.len() < BODY_PEEK {
        match resp.chunk().await {
            Ok(Some(chunk)) => peek.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&peek);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.chars().take(BODY_SNIPPET).collect()
}

fn transport(e: reqwest::Error, target: &Target) -> Error {
    if e.is_timeout() {
        return timed_out(target);
    }
    Error::Network { url: target.shown.clone(), message: explain(e) }
}

/// reqwest's message repeats the URL, credentials included; its sources say
/// what actually failed (refused, TLS, reset), so show those instead.
pub(crate) fn explain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if parts.last() != Some(&part) {
            parts.push(part);
        }
        source = s.source();
    }
    parts.join(": ").replace(['\n', '\r'], " ")
}

fn timed_out(target: &Target) -> Error {
    Error::Timeout { url: target.shown.clone() }
}

fn too_large(target: &Target, limit: u64) -> Error {
    Error::TooLarge { url: target.shown.clone(), limit }
}
