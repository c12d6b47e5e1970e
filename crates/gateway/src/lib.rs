//! The HTTP gateway: the GOPROXY protocol (`list`, `.info`, `.mod`, `.zip`,
//! `@latest`) served from the local store, misses filled from upstream, plus
//! health, readiness, Prometheus metrics and a JSON status endpoint; and the
//! checksum database proxied, cached and checked against on every fetch.

mod cluster;
mod config;
mod error;
mod fill;
mod head;
mod hotzips;
mod kept;
mod lists;
mod metrics;
mod modcheck;
mod negative;
mod page;
mod primary;
mod proxy;
mod recent;
mod router;
mod state;
mod status;
mod sumdb;
pub mod zerocopy;
mod zipserve;

pub use cluster::{Cluster, ClusterError, Role, Standalone};
pub use config::{CacheConfig, GatewayConfig, GatewaySettings, Mode};
pub use error::ApiError;
pub use metrics::Metrics;
pub use router::Gateway;
pub use state::AppState;
pub use sumdb::{check_cached, health, verifying_database, SumdbCheck, SumdbConfig, SumdbConfigError, SumdbHealth, SUM_GOLANG_ORG};
