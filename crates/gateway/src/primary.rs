//! Sending what only the primary can answer (misses, refreshes, writes) to
//! the primary: a `307` to the same path on its advertised URL, or, in
//! forward mode, the primary's answer relayed by this node.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use crate::cluster::Role;
use crate::{ApiError, AppState, Mode};

/// Marks a request relayed by another node, so it is never relayed again.
pub(crate) const FORWARDED: &str = "x-flotilla-forwarded";

/// Headers a relayed request or answer keeps.
const REQUEST_HEADERS: [HeaderName; 3] = [header::RANGE, header::IF_RANGE, header::IF_NONE_MATCH];
const RESPONSE_HEADERS: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::ETAG,
    header::CACHE_CONTROL,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::RETRY_AFTER,
    header::LOCATION,
];

/// The request as received, for redirecting or relaying it unchanged.
pub struct Incoming<'a> {
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The connection sends mapped zips with sendfile ([`crate::zerocopy`]).
    pub zero_copy: bool,
}

impl<'a> Incoming<'a> {
    pub fn new(path: &'a str, headers: &'a HeaderMap) -> Self {
        Incoming { path, headers, zero_copy: false }
    }
}

/// `None`: this node is the primary (or alone) and answers itself.
/// `Some(response)`: the request was sent to the primary.
///
/// A follower learns of a dead primary only when the next election ends.
/// While raft says the primary has gone silent (its connection closed when
/// it was killed, or no heartbeat for three intervals), no client is sent
/// there. Otherwise, in redirect mode, the follower checks that the primary
/// answers before sending the client (the client cannot be retried once
/// redirected); in forward mode the relayed request itself is the check: a
/// primary that cannot be reached is retried. Either way the request waits
/// up to `leader_wait` for a primary that is alive.
pub async fn elsewhere(state: &Arc<AppState>, req: &Incoming<'_>) -> Result<Option<Response>, ApiError> {
    let deadline = Instant::now() + state.cfg.gateway.leader_wait;
    loop {
        let role = state.cluster.role();
        match &role {
            Role::Standalone | Role::Primary => return Ok(None),
            Role::Follower { url: Some(url), .. } => {
                if req.headers.contains_key(FORWARDED) {
                    return Err(ApiError::unavailable(
                        "request was relayed by another node, but this node is not the primary either; retry",
                        1,
                    ));
                }
                if !state.cluster.primary_silent() {
                    let target = format!("{}{}", url.trim_end_matches('/'), req.path);
                    match state.cfg.gateway.mode {
                        Mode::Redirect if primary_answers(state, url).await => return Ok(Some(redirect(&target))),
                        Mode::Redirect => {}
                        Mode::Forward => match forward(state, &target, req.headers).await {
                            Ok(resp) => return Ok(Some(resp)),
                            Err(e) => tracing::debug!(%target, error = %e, "primary unreachable; waiting for one that answers"),
                        },
                    }
                }
            }
            Role::Follower { url: None, .. } | Role::NoPrimary => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(match role {
                Role::Follower { primary, url: None } => ApiError::unavailable(
                    format!("primary is node {primary}, which has not announced its gateway URL yet; retry shortly"),
                    1,
                ),
                Role::Follower { primary, url: Some(url) } => ApiError::unavailable(
                    format!(
                        "primary node {primary} at {url} does not answer and no new primary was elected within {:?}; retry shortly",
                        state.cfg.gateway.leader_wait
                    ),
                    1,
                ),
                _ => no_primary(state),
            });
        }
        let pause = (deadline - now).min(RECHECK);
        if role == Role::NoPrimary {
            state.cluster.wait_for_primary(pause).await;
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

const RECHECK: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether the primary's gateway says it is ready (a dead, frozen or cut-off
/// primary does not).
async fn primary_answers(state: &AppState, url: &str) -> bool {
    let probe = state.peers.get(format!("{}/readyz", url.trim_end_matches('/'))).timeout(PROBE_TIMEOUT).send().await;
    match probe {
        Ok(resp) if resp.status().is_success() => true,
        Ok(resp) => {
            tracing::debug!(%url, status = %resp.status(), "primary is not ready");
            false
        }
        Err(e) => {
            tracing::debug!(%url, error = %e, "primary does not answer");
            false
        }
    }
}

pub fn no_primary(state: &AppState) -> ApiError {
    ApiError::unavailable(
        format!(
            "no primary: the cluster is electing one or this node is cut off (waited {:?}); retry shortly",
            state.cfg.gateway.leader_wait
        ),
        1,
    )
}

fn redirect(target: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(target) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Relays the request to the primary. `Err`: the primary could not be
/// reached or gave no answer (safe to retry: GOPROXY requests are reads).
async fn forward(state: &AppState, target: &str, headers: &HeaderMap) -> Result<Response, reqwest::Error> {
    let mut req = state.peers.get(target).header(FORWARDED, "1");
    for name in REQUEST_HEADERS {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    let upstream = req.send().await?;
    let status = upstream.status();
    let kept: Vec<(HeaderName, HeaderValue)> =
        RESPONSE_HEADERS.into_iter().filter_map(|name| upstream.headers().get(&name).cloned().map(|v| (name, v))).collect();
    let mut resp = Response::new(Body::from_stream(upstream.bytes_stream()));
    *resp.status_mut() = status;
    resp.headers_mut().extend(kept);
    Ok(resp)
}
