//! Can this node reach its upstream proxies (`flotillactl doctor`)? Each
//! proxy is checked step by step — DNS, TCP, then TLS and HTTP with the
//! same client (and CA bundle) as real fetches — and the first step that
//! fails is named, with what to do about it.

use std::time::Duration;

use crate::chain::{Chain, Target};
use crate::client::Upstream;

/// The outcome for one proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The proxy's base URL, credentials masked.
    pub proxy: String,
    /// `ok`, or the step that failed: `url`, `dns`, `tcp`, `tls`, `http`.
    pub step: &'static str,
    /// What happened (the HTTP status on success, the error otherwise).
    pub detail: String,
    /// What to do about a failure, when known.
    pub hint: String,
}

const TLS_HINT: &str = "the proxy's TLS certificate is not trusted (x509: certificate signed by unknown authority): \
                        a corporate CA bundle is probably needed (TLS interception); put it in a PEM file on this node \
                        and set upstream.ca_file to it";

impl Upstream {
    /// Checks every proxy of `upstream.proxies` and `upstream.private_proxies`.
    pub async fn probe(&self) -> Vec<Probe> {
        let inner = &self.inner;
        let chains: Vec<&Chain> = std::iter::once(&inner.public).chain(inner.private.as_ref()).collect();
        let mut out = Vec::new();
        for entry in chains.iter().flat_map(|c| &c.entries) {
            if let Target::Proxy(base) = &entry.target {
                out.push(self.probe_one(&base.url, &base.masked).await);
            }
        }
        out
    }

    async fn probe_one(&self, url: &str, shown: &str) -> Probe {
        let fail =
            |step: &'static str, detail: String, hint: &str| Probe { proxy: shown.to_string(), step, detail, hint: hint.to_string() };
        let timeout = self.inner.connect_timeout;
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(e) => return fail("url", e.to_string(), "fix the URL in upstream.proxies"),
        };
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return fail("url", "no host or port".into(), "fix the URL in upstream.proxies");
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
            Ok(Err(e)) => {
                return fail("dns", format!("cannot resolve {host}: {e}"), "check this node's DNS (resolv.conf) or the host name")
            }
            Err(_) => return fail("dns", format!("resolving {host} took over {timeout:?}"), "check this node's DNS (resolv.conf)"),
        };
        let Some(addr) = addrs.first() else { return fail("dns", format!("{host} resolves to no address"), "check the host name") };
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return fail("tcp", format!("cannot connect to {addr}: {e}"), "a firewall or an outgoing proxy in the way?"),
            Err(_) => return fail("tcp", format!("no TCP connection to {addr} within {timeout:?}"), "a firewall dropping packets?"),
        }
        match self.inner.http.probe(url, Duration::from_secs(10).max(timeout)).await.map_err(crate::http::explain) {
            Ok(status) => Probe { proxy: shown.to_string(), step: "ok", detail: format!("HTTP {status}"), hint: String::new() },
            Err(e) if is_x509(&e) => fail("tls", e, TLS_HINT),
            Err(e) if parsed.scheme() == "https" && e.to_ascii_lowercase().contains("tls") => fail("tls", e, ""),
            Err(e) => fail("http", e, ""),
        }
    }
}

fn is_x509(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    ["certificate", "unknownissuer", "unknown issuer", "x509"].iter().any(|needle| e.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_recognised() {
        assert!(is_x509("error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"));
        assert!(!is_x509("error sending request: connection refused"));
    }
}
