//! The `[upstream]` settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Where and how Flotilla fetches what it does not have yet: the
/// `[upstream]` section of the node's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// GOPROXY syntax: `https://a.example,https://b.example|http://c:8080`.
    pub proxies: String,
    /// GOPRIVATE-style globs, comma separated; empty means none.
    pub private: String,
    /// GOPROXY syntax chain used only for private paths; empty refuses them.
    pub private_proxies: String,
    /// Extra PEM CA bundle, trusted in addition to the system and webpki roots.
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Total deadline of a metadata request (`list`, `.info`, `.mod`, `@latest`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest pause between two body chunks of a download.
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    /// Set by the program, not by configuration.
    #[serde(skip)]
    pub user_agent: String,
}

pub const DEFAULT_PROXIES: &str = "https://proxy.golang.org";

impl Default for Config {
    fn default() -> Self {
        Config {
            proxies: DEFAULT_PROXIES.to_string(),
            private: String::new(),
            private_proxies: String::new(),
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            user_agent: concat!("flotilla/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}
