use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use background::Workers;
use gomod::ModulePath;
use store::{ListRecord, Store, ZipRef};
use upstream::{Group, Upstream};

use crate::cluster::Cluster;
use crate::hotzips::HotZips;
use crate::kept::KeptAnswers;
use crate::negative::NegativeCache;
use crate::recent::RecentFetches;
use crate::{ApiError, GatewayConfig, Metrics};

/// Shared by every request handler of one node.
pub struct AppState {
    pub cfg: GatewayConfig,
    pub store: Arc<Store>,
    pub upstream: Upstream,
    pub cluster: Arc<dyn Cluster>,
    /// The node's background workers, listed by `/api/v1/status`.
    pub workers: Workers,
    pub metrics: Metrics,
    pub(crate) hot_zips: HotZips,
    /// Answers read from the catalog, by request path.
    pub(crate) kept: KeptAnswers,
    pub(crate) negative: NegativeCache,
    /// One upstream fill per key, however many clients ask at once.
    pub(crate) zip_fills: Group<String, Result<ZipRef, ApiError>>,
    pub(crate) file_fills: Group<String, Result<Vec<u8>, ApiError>>,
    pub(crate) list_fills: Group<ModulePath, Result<ListRecord, ApiError>>,
    /// One checksum database fetch per path however many ask.
    pub(crate) sumdb_fetches: Group<String, Result<Vec<u8>, ApiError>>,
    /// Serialises tile reads, so a tile one read fetched is recorded before the next looks.
    pub(crate) sumdb_tiles: tokio::sync::Mutex<()>,
    pub(crate) started: Instant,
    /// The last upstream fills, for the status page.
    pub(crate) recent: RecentFetches,
    /// Zip downloads from upstream under way (`cfg.gateway.max_fills` at most).
    pub(crate) fill_slots: tokio::sync::Semaphore,
    /// `Cache-Control` of lists and `@latest` (`cache.list_ttl`).
    pub(crate) list_cache_control: axum::http::HeaderValue,
    /// Client for relaying requests to the primary (forward mode).
    pub(crate) peers: reqwest::Client,
}

impl AppState {
    pub fn new(cfg: GatewayConfig, store: Arc<Store>, upstream: Upstream, cluster: Arc<dyn Cluster>, workers: Workers) -> Arc<Self> {
        let cfg_max_fills = cfg.gateway.max_fills.max(1);
        Arc::new(AppState {
            negative: NegativeCache::new(cfg.cache.negative_ttl),
            hot_zips: HotZips::new(cfg.cache.memory),
            kept: KeptAnswers::new(cfg.cache.memory / 4),
            list_cache_control: format!("public, max-age={}", cfg.cache.list_ttl.as_secs())
                .parse()
                .unwrap_or(axum::http::HeaderValue::from_static("no-cache")),
            cfg,
            store,
            upstream,
            cluster,
            workers,
            metrics: Metrics::default(),
            zip_fills: Group::new(),
            file_fills: Group::new(),
            list_fills: Group::new(),
            sumdb_fetches: Group::new(),
            sumdb_tiles: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            recent: RecentFetches::default(),
            fill_slots: tokio::sync::Semaphore::new(cfg_max_fills),
            peers: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(2))
                // Forward mode: a frozen primary must not hold a relayed
                // request (each read of its answer must progress).
                .read_timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        })
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
