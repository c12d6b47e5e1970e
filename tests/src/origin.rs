//! A fake upstream GOPROXY origin: an axum server on 127.0.0.1 (or a given
//! address) in its own tokio runtime, serving a [`ModuleSet`] with the
//! GOPROXY layout. It counts requests per path, can be stopped and started
//! again on the same port, can throttle a response to a number of bytes per
//! second, and can tamper with answers.
//!
//! Use it from plain `#[test]` functions (not inside a tokio runtime): it
//! owns a runtime, and starting or stopping one inside another panics.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::escape::{percent_decode, unescape};
use crate::modules::ModuleSet;

/// How the origin misbehaves for one path.
#[derive(Debug, Clone)]
pub enum Tamper {
    /// Answer 200 with these bytes instead of the real ones.
    Body(Vec<u8>),
    /// Answer with this status and a one-line text body.
    Status(u16),
    /// Never answer (the connection stays open until the origin stops).
    Hang,
    /// Answer as usual, after this pause.
    Delay(std::time::Duration),
}

#[derive(Default)]
struct Shared {
    modules: RwLock<ModuleSet>,
    requests: Mutex<Vec<String>>,
    counts: Mutex<HashMap<String, usize>>,
    throttles: Mutex<HashMap<String, u64>>,
    sent: Mutex<HashMap<String, u64>>,
    tampers: Mutex<HashMap<String, Tamper>>,
}

/// The fake origin. Dropping it stops the server.
pub struct Origin {
    shared: Arc<Shared>,
    addr: SocketAddr,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Origin {
    /// Starts serving `modules` on a free port of 127.0.0.1.
    pub fn start(modules: ModuleSet) -> Origin {
        Origin::start_on(modules, IpAddr::from([127, 0, 0, 1]))
    }

    /// Starts serving `modules` on a free port of `ip`: the gateway address
    /// of a test's own Docker network, so that its containers reach it.
    pub fn start_on(modules: ModuleSet, ip: IpAddr) -> Origin {
        let shared = Arc::new(Shared { modules: RwLock::new(modules), ..Shared::default() });
        let (runtime, addr) =
            serve(shared.clone(), SocketAddr::new(ip, 0)).unwrap_or_else(|e| panic!("fake origin cannot start on {ip}: {e}"));
        Origin { shared, addr, runtime: Mutex::new(Some(runtime)) }
    }

    /// `http://IP:PORT`, usable as a GOPROXY entry.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and drops every open connection (in-flight
    /// downloads end abruptly). The port stays reserved for [`Origin::restart`].
    pub fn stop(&self) {
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }

    /// Serves again on the same port after [`Origin::stop`].
    pub fn restart(&self) {
        let mut slot = self.runtime.lock();
        assert!(slot.is_none(), "origin is already running");
        let mut last = None;
        let started = crate::wait_until(Duration::from_secs(10), || match serve(self.shared.clone(), self.addr) {
            Ok((rt, _)) => {
                *slot = Some(rt);
                true
            }
            Err(e) => {
                last = Some(e);
                false
            }
        });
        assert!(started, "fake origin cannot listen on {} again: {last:?}", self.addr);
    }

    /// Changes what the origin serves (e.g. publishes a new version).
    pub fn modules_mut(&self) -> parking_lot::RwLockWriteGuard<'_, ModuleSet> {
        self.shared.modules.write()
    }

    /// A copy of what the origin serves.
    pub fn modules(&self) -> ModuleSet {
        self.shared.modules.read().clone()
    }

    /// Requests received for `path`; `!` and `%21` spellings count as one.
    pub fn count(&self, path: &str) -> usize {
        self.shared.counts.lock().get(&normalize(path)).copied().unwrap_or(0)
    }

    /// Every request path received, raw and in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().clone()
    }

    /// Forgets the request log and counters.
    pub fn reset_counts(&self) {
        self.shared.requests.lock().clear();
        self.shared.counts.lock().clear();
        self.shared.sent.lock().clear();
    }

    /// Sends the body of `path` at about `bytes_per_second`.
    pub fn throttle(&self, path: &str, bytes_per_second: u64) {
        self.shared.throttles.lock().insert(normalize(path), bytes_per_second.max(1));
    }

    pub fn unthrottle(&self, path: &str) {
        self.shared.throttles.lock().remove(&normalize(path));
    }

    /// Body bytes of `path` handed to the network so far, over all requests.
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.shared.sent.lock().get(&normalize(path)).copied().unwrap_or(0)
    }

    pub fn tamper(&self, path: &str, how: Tamper) {
        self.shared.tampers.lock().insert(normalize(path), how);
    }

    pub fn untamper(&self, path: &str) {
        self.shared.tampers.lock().remove(&normalize(path));
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
    }
}

fn serve(shared: Arc<Shared>, addr: SocketAddr) -> io::Result<(tokio::runtime::Runtime, SocketAddr)> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("fake-origin").enable_all().build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let local = listener.local_addr()?;
    let app = Router::new().fallback(handle).with_state(shared);
    rt.spawn(async move { axum::serve(listener, app).await });
    Ok((rt, local))
}

fn normalize(path: &str) -> String {
    percent_decode(path).unwrap_or_else(|| path.to_owned())
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let raw = req.uri().path().to_owned();
    let key = normalize(&raw);
    shared.requests.lock().push(raw);
    *shared.counts.lock().entry(key.clone()).or_default() += 1;
    let tamper = shared.tampers.lock().get(&key).cloned();
    let found = match tamper {
        Some(Tamper::Hang) => std::future::pending().await,
        Some(Tamper::Status(code)) => {
            return text(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "tampered by test")
        }
        Some(Tamper::Body(bytes)) => Some(("application/octet-stream", bytes)),
        Some(Tamper::Delay(pause)) => {
            tokio::time::sleep(pause).await;
            lookup(&shared.modules.read(), &key)
        }
        None => lookup(&shared.modules.read(), &key),
    };
    let Some((content_type, body)) = found else {
        return text(StatusCode::NOT_FOUND, &format!("not found: {key}"));
    };
    let rate = shared.throttles.lock().get(&key).copied();
    let len = body.len();
    let body = match rate {
        None => {
            *shared.sent.lock().entry(key).or_default() += len as u64;
            Body::from(body)
        }
        Some(rate) => throttled(shared, key, Bytes::from(body), rate),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

fn text(status: StatusCode, msg: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{msg}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Streams `body` in slices, pausing between them so that about `rate`
/// bytes leave per second.
fn throttled(shared: Arc<Shared>, key: String, body: Bytes, rate: u64) -> Body {
    let slice = (rate / 20).clamp(512, 256 * 1024) as usize;
    let pause = Duration::from_secs_f64(slice as f64 / rate as f64);
    let stream = futures::stream::unfold(0usize, move |offset| {
        let (shared, key, body) = (shared.clone(), key.clone(), body.clone());
        async move {
            if offset >= body.len() {
                return None;
            }
            if offset > 0 {
                tokio::time::sleep(pause).await;
            }
            let end = (offset + slice).min(body.len());
            *shared.sent.lock().entry(key).or_default() += (end - offset) as u64;
            Some((Ok::<_, io::Error>(body.slice(offset..end)), end))
        }
    });
    Body::from_stream(stream)
}

/// Finds the answer for a percent-decoded path.
fn lookup(modules: &ModuleSet, key: &str) -> Option<(&'static str, Vec<u8>)> {
    let path = key.strip_prefix('/')?;
    if let Some(module) = path.strip_suffix("/@latest") {
        return Some(("application/json", modules.latest(&unescape(module)?)?.info.clone()));
    }
    let (module, file) = path.split_once("/@v/")?;
    let module = unescape(module)?;
    if file == "list" {
        return Some(("text/plain; charset=utf-8", modules.list_body(&module)?.into_bytes()));
    }
    let (version, ext) = file.rsplit_once('.')?;
    let version = unescape(version)?;
    if ext == "info" {
        // Like proxy.golang.org, `.info` is a query: `v2.0.0` on a path
        // without a major suffix resolves to `v2.0.0+incompatible`.
        let incompatible = format!("{version}+incompatible");
        let v = modules.find(&module, &version).or_else(|| modules.find(&module, &incompatible))?;
        return Some(("application/json", v.info.clone()));
    }
    let v = modules.find(&module, &version)?;
    match ext {
        "mod" => Some(("text/plain; charset=utf-8", v.go_mod.clone())),
        "zip" => Some(("application/zip", v.zip.clone())),
        _ => None,
    }
}
