use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// What the gateway needs to know from the node's configuration: its
/// `[gateway]` and `[cache]` sections as they are, and the rest it uses.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub node_id: u64,
    /// `[gateway]`: the HTTP server and how misses reach the primary.
    pub gateway: GatewaySettings,
    /// `[cache]`: list freshness, negative caching, hot zips in memory.
    pub cache: CacheConfig,
    /// Limits applied to upstream zips (Go's own limits by default).
    pub zip_limits: gomod::ZipLimits,
    /// Checksum databases proxied; the first one verifies every fetch.
    pub sumdb: Vec<crate::SumdbConfig>,
}

/// The `[gateway]` section of the node's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Where the GOPROXY HTTP server listens.
    pub listen: SocketAddr,
    /// The URL clients use to reach this node's gateway (where other nodes redirect to).
    pub advertise_url: Option<String>,
    /// What a follower does with a miss: `redirect` (307 to the primary) or
    /// `forward` (fetch from the primary and relay it).
    pub mode: Mode,
    /// How long a request waits for a primary during an election before `503`.
    #[serde(with = "humantime_serde")]
    pub leader_wait: Duration,
    /// Longest wait for a request's headers, and for the next request on a
    /// kept-alive connection (slowloris, idle connections).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Client connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// Zip downloads from upstream at once; more fills wait their turn, so
    /// one client asking for thousands of zips cannot take the disk or the
    /// network.
    pub max_fills: usize,
}

/// The `[cache]` section of the node's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long a cached `@v/list` or `@latest` answer is served before upstream is asked again.
    #[serde(with = "humantime_serde")]
    pub list_ttl: Duration,
    /// How long an upstream "not found" is remembered.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Memory for hot, verified zips of up to 1 MiB served without touching
    /// the disk (0 turns it off).
    #[serde(deserialize_with = "api::byte_size")]
    pub memory: u64,
}

/// `gateway.mode` in the node's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
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
            gateway: GatewaySettings::default(),
            cache: CacheConfig::default(),
            zip_limits: gomod::ZipLimits::default(),
            sumdb: Vec::new(),
        }
    }
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            advertise_url: None,
            mode: Mode::Redirect,
            leader_wait: Duration::from_secs(5),
            header_timeout: Duration::from_secs(15),
            max_connections: 4096,
            max_fills: 16,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { list_ttl: Duration::from_secs(60), negative_ttl: Duration::from_secs(600), memory: 64 << 20 }
    }
}
