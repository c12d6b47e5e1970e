//! [`Upstream`]: routes a request to the public or the private proxy chain
//! and walks it with the go command's fallback rules.

use crate::chain::{Chain, Failures, Target as Entry};
use crate::http::{Http, Target};
use crate::{Config, Error, Result};
use bytes::Bytes;
use gomod::ModulePath;
use std::sync::Arc;
use tokio::io::AsyncWrite;

/// A fully read answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    /// Base URL of the proxy that answered, credentials masked.
    pub source: String,
}

/// A body streamed into a sink.
#[derive(Debug, Clone)]
pub struct Download {
    pub bytes: u64,
    /// Base URL of the proxy that answered, credentials masked.
    pub source: String,
}

/// The upstream proxies: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Upstream {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) public: Chain,
    pub(crate) private_globs: String,
    pub(crate) private: Option<Chain>,
    pub(crate) http: Http,
    pub(crate) connect_timeout: std::time::Duration,
}

impl Upstream {
    pub fn new(cfg: Config) -> Result<Self> {
        let proxies = match cfg.proxies.trim() {
            "" => crate::config::DEFAULT_PROXIES,
            list => list,
        };
        let public = Chain::parse("upstream.proxies", proxies)?;
        let private = match cfg.private_proxies.trim() {
            "" => None,
            list => Some(Chain::parse("upstream.private_proxies", list)?),
        };
        gomod::check_prefix_patterns(&cfg.private).map_err(|e| Error::Config(format!("upstream.private: {e}")))?;
        let http = Http::new(&cfg)?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                public,
                private_globs: cfg.private.trim().to_string(),
                private,
                http,
                connect_timeout: cfg.connect_timeout,
            }),
        })
    }

    /// Streams `<base>/<module>/<suffix>` into `sink`, at most `limit` bytes
    /// and at most `read_timeout` between chunks. Once a proxy has written
    /// bytes to the sink, its failure ends the walk: the caller must discard
    /// the partial data.
    pub async fn download(
        &self,
        module: &ModulePath,
        suffix: &str,
        limit: u64,
        sink: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<Download> {
        let chain = self.chain_for(module)?;
        let path = request_path(module, suffix);
        let mut failures = Failures::default();
        for entry in &chain.entries {
            let err = match &entry.target {
                Entry::Off => Error::Disabled,
                Entry::Proxy(base) => {
                    let target = Target::new(base, &path);
                    let mut written = 0;
                    match self.inner.http.stream(&target, limit, sink, &mut written).await {
                        Ok(()) => return Ok(Download { bytes: written, source: base.masked.clone() }),
                        Err(e @ Error::Io(_)) => return Err(e),
                        Err(e) if written > 0 => {
                            tracing::warn!(error = %e, written, "upstream download broke off");
                            return Err(e);
                        }
                        Err(e) => e,
                    }
                }
            };
            if !failures.record(entry, err) {
                break;
            }
        }
        Err(failures.into_error())
    }

    /// GETs an absolute URL (a checksum database's `lookup`, `latest` or
    /// `tile` path) with the same TLS roots, deadlines and size cap as the
    /// proxies, and reads it whole.
    pub async fn fetch_url(&self, url: &str, limit: u64) -> Result<Bytes> {
        self.inner.http.fetch(&Target::url(url), limit).await
    }

    /// Whether lookups of `module` are switched off: its proxy list starts
    /// with `off`, so no proxy is ever asked.
    pub fn is_off(&self, module: &ModulePath) -> bool {
        self.chain_for(module).is_ok_and(|chain| matches!(chain.entries.first().map(|e| &e.target), Some(Entry::Off)))
    }

    /// Does `module` match `upstream.private`?
    pub fn is_private(&self, module: &ModulePath) -> bool {
        !self.inner.private_globs.is_empty() && gomod::match_prefix_patterns(&self.inner.private_globs, module.as_str())
    }

    /// The chains in use, credentials masked, for logs and the status page.
    pub fn describe(&self) -> String {
        let inner = &self.inner;
        let mut out = format!("proxies={}", inner.public.describe());
        if !inner.private_globs.is_empty() || inner.private.is_some() {
            let private = inner.private.as_ref().map_or("none (private modules refused)".to_string(), Chain::describe);
            let globs = match inner.private_globs.as_str() {
                "" => "(none, so private_proxies is unused)",
                globs => globs,
            };
            out.push_str(&format!(" private={globs} private_proxies={private}"));
        }
        out
    }

    /// Fetches `<base>/<module>/<suffix>` (suffix like `@v/list`,
    /// `@v/v1.0.0.info` with the version escaped, `@latest`) and reads it
    /// whole, at most `limit` bytes. Every call is a request: concurrent
    /// identical ones are shared by the caller's singleflight (the gateway
    /// runs each fill once per key), not here.
    pub async fn get(&self, module: &ModulePath, suffix: &str, limit: u64) -> Result<Fetched> {
        let chain = self.chain_for(module)?;
        let path = request_path(module, suffix);
        let mut failures = Failures::default();
        for entry in &chain.entries {
            let err = match &entry.target {
                Entry::Off => Error::Disabled,
                Entry::Proxy(base) => match self.inner.http.fetch(&Target::new(base, &path), limit).await {
                    Ok(body) => return Ok(Fetched { body, source: base.masked.clone() }),
                    Err(e) => e,
                },
            };
            if !failures.record(entry, err) {
                break;
            }
        }
        Err(failures.into_error())
    }

    fn chain_for(&self, module: &ModulePath) -> Result<&Chain> {
        if !self.is_private(module) {
            return Ok(&self.inner.public);
        }
        self.inner.private.as_ref().ok_or_else(|| {
            Error::Forbidden(format!("module {} matches upstream.private and no upstream.private_proxies is configured", module.as_str()))
        })
    }
}

fn request_path(module: &ModulePath, suffix: &str) -> String {
    format!("{}/{}", module.escaped(), suffix.trim_start_matches('/'))
}
