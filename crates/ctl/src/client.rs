//! Talking to the admin API: one channel per address (built in [`channel`],
//! the one place that knows how to reach a node), the first address that
//! answers wins, and errors that say what to do.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use proto::tls::{Transport, ANY_NODE};
use proto::AdminClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the cluster is and how to prove we may administer it.
pub struct Admin {
    addrs: Vec<String>,
    token: String,
    /// Plaintext, or mutual TLS with the cluster CA (`--tls-*`).
    transport: Transport,
    /// How long one call may take before it counts as unanswered.
    timeout: Duration,
}

/// A call that may have changed state on the cluster but whose answer never came.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OutcomeUnknown(pub String);

impl Admin {
    pub fn new(addrs: &[String], token: String, transport: Transport) -> Result<Admin> {
        let addrs: Vec<String> = addrs.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
        if addrs.is_empty() {
            bail!("no cluster address given: set FLOTILLA_CLUSTER or --cluster to host:port of the nodes' cluster port (7000 by default)");
        }
        Ok(Admin { addrs, token, transport, timeout: CALL_TIMEOUT })
    }

    /// The same cluster, with calls allowed to take up to `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Admin {
        Admin { addrs: self.addrs.clone(), token: self.token.clone(), transport: self.transport.clone(), timeout }
    }

    /// Sends a read call to the first address that answers; a node that is
    /// down or has no primary is skipped.
    pub async fn read<T, R, F, Fut>(&self, rpc: F, message: T) -> Result<R>
    where
        T: Clone,
        F: Fn(AdminClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        self.send(rpc, message, false).await
    }

    /// Sends a call that changes state. It goes to the next address only when
    /// the previous one surely did nothing (could not connect, or refused
    /// with UNAVAILABLE before acting); a call that timed out may have taken
    /// effect, so it fails with [`OutcomeUnknown`] instead of being repeated.
    pub async fn write<T, R, F, Fut>(&self, rpc: F, message: T) -> Result<R>
    where
        T: Clone,
        F: Fn(AdminClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        self.send(rpc, message, true).await
    }

    async fn send<T, R, F, Fut>(&self, rpc: F, message: T, write: bool) -> Result<R>
    where
        T: Clone,
        F: Fn(AdminClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let mut failures = Vec::new();
        for addr in &self.addrs {
            let channel = match channel(&self.transport, addr).await {
                Ok(channel) => channel,
                Err(e) => {
                    let hint = if self.transport.is_tls() {
                        ""
                    } else {
                        "; if the nodes use TLS, give --tls-ca-file, --tls-cert-file, --tls-key-file"
                    };
                    failures.push(format!("{addr}: {e:#}{hint}"));
                    continue;
                }
            };
            let mut request = Request::new(message.clone());
            proto::wire::stamp(request.metadata_mut());
            let bearer = format!("Bearer {}", self.token).parse().context("the admin token is not valid in a header")?;
            request.metadata_mut().insert("authorization", bearer);
            let answer = tokio::time::timeout(self.timeout, rpc(AdminClient::new(channel), request))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded(format!("no answer within {:?}", self.timeout))));
            match answer {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) if write && timed_out(&status) => {
                    return Err(OutcomeUnknown(format!(
                        "{addr}: no answer in time ({}); the change may or may not have been made: check with \
                         `flotillactl audit` or `flotillactl modules show` before trying again",
                        status.message()
                    ))
                    .into())
                }
                // A read that timed out is safe to ask the next node.
                Err(status) if status.code() == Code::Unavailable || timed_out(&status) => {
                    failures.push(format!("{addr}: {}", status.message()))
                }
                Err(status) => {
                    // A TLS port answers a plaintext HTTP/2 client with garbage.
                    let garbled = ["h2 protocol error", "transport error"].iter().any(|m| status.message().contains(m));
                    let tls_hint = if !self.transport.is_tls() && garbled {
                        " (the node speaks TLS: give --tls-ca-file, --tls-cert-file, --tls-key-file)"
                    } else {
                        ""
                    };
                    bail!("{addr}: {}{tls_hint}", explain(&status))
                }
            }
        }
        bail!(
            "no node could answer; check that the nodes run and that FLOTILLA_CLUSTER / --cluster lists their cluster ports \
             (cluster.listen, 7000 by default):\n  {}",
            failures.join("\n  ")
        )
    }
}

/// A connected channel to the node at `addr` (`host:port`, or a URL whose
/// scheme is ignored: `transport` decides plaintext or TLS).
pub async fn channel(transport: &Transport, addr: &str) -> Result<Channel> {
    let host_port = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    let endpoint = transport.endpoint(host_port, ANY_NODE)?;
    endpoint.connect().await.map_err(|e| anyhow::anyhow!("cannot connect ({})", proto::with_sources(&e)))
}

/// Whether the call may have reached the node and be running there still.
fn timed_out(status: &Status) -> bool {
    status.code() == Code::DeadlineExceeded || status.message().to_ascii_lowercase().contains("timeout expired")
}

fn explain(status: &Status) -> String {
    // An HTTP server that is not a gRPC one (say, a node's gateway port)
    // answers with a plain HTTP status, which tonic reports like this.
    let not_grpc = status.code() == Code::Unimplemented || status.message().contains("while receiving response with status");
    if not_grpc {
        return format!(
            "{} (is this the cluster port of a Flotilla node? the gateway port does not serve the admin API; \
             use cluster.listen, 7000 by default, or admin.listen of a single node)",
            status.message()
        );
    }
    status.message().to_string()
}
