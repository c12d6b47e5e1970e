use std::time::Duration;

/// What the gateway needs to know from the node's configuration.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub node_id: u64,
    /// How long a cached `@v/list` or `@latest` answer is served before upstream is asked again.
    pub list_ttl: Duration,
    /// How long an upstream "not found" is remembered.
    pub negative_ttl: Duration,
    /// Limits applied to upstream zips (Go's own limits by default).
    pub zip_limits: gomod::ZipLimits,
    /// What a follower does with a request only the primary can answer.
    pub mode: Mode,
    /// How long a request waits for a primary during an election before `503`.
    pub leader_wait: Duration,
    /// Memory for hot, verified zips served without touching the disk.
    pub hot_zips_bytes: u64,
    /// Checksum databases proxied; the first one verifies every fetch.
    pub sumdb: Vec<crate::SumdbConfig>,
    /// Zip downloads from upstream at once; more fills wait their turn, so
    /// one client asking for thousands of zips cannot take the disk or the
    /// network.
    pub max_fills: usize,
}

/// `gateway.mode` in the node's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `307` to the same path on the primary's advertised URL.
    Redirect,
    /// Fetch it from the primary and relay the answer.
    Forward,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            node_id: 1,
            list_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(600),
            zip_limits: gomod::ZipLimits::default(),
            mode: Mode::Redirect,
            leader_wait: Duration::from_secs(5),
            hot_zips_bytes: 64 << 20,
            sumdb: Vec::new(),
            max_fills: 16,
        }
    }
}
