//! Asking another node's admin service: a call passed on to the primary,
//! or one member asked for its own facts.

use std::fmt;
use std::time::Duration;

use proto::tls::{TlsError, Transport};
use proto::{AdminClient, PurgeReply, PurgeRequest};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::{AUTHORIZATION, FORWARDED, FORWARD_TIMEOUT};

/// Why another node's admin service gave no answer.
#[derive(Debug)]
pub(super) enum PeerError {
    /// Its cluster address cannot be used.
    Address(TlsError),
    /// No connection (the message carries the transport error's causes).
    Connect(tonic::transport::Error),
    /// It answered with an error.
    Refused(Status),
    /// No answer within the deadline.
    Timeout(Duration),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Address(e) => write!(f, "{e}"),
            PeerError::Connect(e) => f.write_str(&proto::with_sources(e)),
            PeerError::Refused(status) => f.write_str(status.message()),
            PeerError::Timeout(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

/// An admin client of the node at cluster address `addr`.
pub(super) async fn peer_client(
    transport: &Transport,
    addr: &str,
    timeout: Duration,
) -> Result<AdminClient<tonic::transport::Channel>, PeerError> {
    let endpoint = transport.endpoint(addr, proto::tls::ANY_NODE).map_err(PeerError::Address)?;
    let channel = endpoint.timeout(timeout).connect().await.map_err(PeerError::Connect)?;
    Ok(AdminClient::new(channel))
}

/// An admin client of the primary, node `leader` at `addr`; a connection
/// that fails is "unavailable … retry" (nothing was sent).
pub(super) async fn primary_client(
    transport: &Transport,
    leader: u64,
    addr: &str,
    timeout: Duration,
) -> Result<AdminClient<tonic::transport::Channel>, Status> {
    peer_client(transport, addr, timeout)
        .await
        .map_err(|e| Status::unavailable(format!("cannot reach the primary, node {leader} at {addr}: {e}; retry")))
}

/// `message` with the caller's token, and marked as passed on by node `me`.
pub(super) fn passed_on<T>(me: u64, metadata: &MetadataMap, message: T) -> Request<T> {
    let mut request = Request::new(message);
    proto::wire::stamp(request.metadata_mut());
    if let Some(auth) = metadata.get(AUTHORIZATION) {
        request.metadata_mut().insert(AUTHORIZATION, auth.clone());
    }
    request.metadata_mut().insert(FORWARDED, tonic::metadata::AsciiMetadataValue::from(me));
    request
}

/// Passes a call on to the primary with the caller's token.
pub(super) async fn forward(
    transport: &Transport,
    me: u64,
    leader: u64,
    addr: &str,
    metadata: &MetadataMap,
    req: PurgeRequest,
) -> Result<Response<PurgeReply>, Status> {
    let mut client = primary_client(transport, leader, addr, FORWARD_TIMEOUT).await?;
    client.purge(passed_on(me, metadata, req)).await.map_err(|status| lost_answer(status, leader))
}

/// The primary may have committed a passed-on call whose answer was lost
/// (a timeout, a dropped connection): only the primary's own refusals,
/// which end in "retry" when nothing was done, may be taken at their word.
pub(super) fn lost_answer(status: Status, leader: u64) -> Status {
    let lost = match status.code() {
        tonic::Code::Cancelled | tonic::Code::Unknown => true,
        tonic::Code::Unavailable => !status.message().ends_with("retry"),
        _ => status.message().contains("Timeout expired"),
    };
    if lost {
        Status::deadline_exceeded(format!(
            "outcome unknown: no answer from the primary, node {leader} ({}); the change may still take effect",
            status.message()
        ))
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_answer_from_the_primary_is_an_unknown_outcome_but_its_refusals_are_not() {
        let lost = lost_answer(Status::unavailable("transport error: connection reset"), 2);
        assert_eq!(lost.code(), tonic::Code::DeadlineExceeded);
        assert!(lost.message().starts_with("outcome unknown"), "{}", lost.message());
        let timed_out = lost_answer(Status::cancelled("Timeout expired"), 2);
        assert_eq!(timed_out.code(), tonic::Code::DeadlineExceeded);
        let refused = lost_answer(Status::unavailable("no primary elected within 5s (is a majority of the nodes up?); retry"), 2);
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        let not_found = lost_answer(Status::not_found("example.com/m@v1.0.0 is not in the catalog; nothing to purge"), 2);
        assert_eq!(not_found.code(), tonic::Code::NotFound);
    }
}
