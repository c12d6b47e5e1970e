//! Configuration: defaults, then a TOML file, then `FLOTILLA_*` environment
//! variables, then command-line flags — each layer overrides the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

mod cluster;
mod env;
mod secret;

pub use self::cluster::ClusterSection;
use self::env::apply_env;
pub use self::secret::{check_private_file, read_secret_file};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub gateway: gateway::GatewaySettings,
    pub upstream: upstream::Config,
    pub cache: gateway::CacheConfig,
    pub cluster: ClusterSection,
    pub raft: raft::RaftSettings,
    pub replication: replicator::ReplicationConfig,
    pub admin: AdminSection,
    /// `[[sumdb]]` tables: checksum databases proxied for the go command;
    /// the first verifies every fetched version. Default: sum.golang.org.
    /// `sumdb = []` (or `FLOTILLA_SUMDB=off`) turns both off.
    pub sumdb: Vec<gateway::SumdbConfig>,
    /// How long a shutdown (SIGTERM/SIGINT) may take in all: requests in
    /// flight finish, background workers stop, raft stops. Past it the
    /// process exits with status 1.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

/// `[admin]`: the admin API (`flotilla.v1.Admin`, used by `flotillactl`) on
/// the cluster port, or on `listen` for a single node.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// File of `name:token` lines (or one bare token); without it the admin API refuses every call.
    pub token_file: Option<PathBuf>,
    /// Where a single node serves the admin API (a cluster node uses its cluster port).
    pub listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            data_dir: PathBuf::from("./flotilla-data"),
            gateway: gateway::GatewaySettings::default(),
            upstream: upstream::Config::default(),
            cache: gateway::CacheConfig::default(),
            cluster: ClusterSection::default(),
            raft: raft::RaftSettings::default(),
            replication: replicator::ReplicationConfig::default(),
            admin: AdminSection::default(),
            sumdb: vec![gateway::SumdbConfig::sum_golang_org()],
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Loads the configuration from an optional file and the environment.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let source = file.map(|p| p.display().to_string()).unwrap_or_else(|| "environment".into());
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration ({source}): {}", e.message()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.node_id == 0 {
            bail!("node_id must be 1 or more");
        }
        if self.gateway.header_timeout < Duration::from_millis(100) {
            bail!("gateway.header_timeout must be at least 100ms (e.g. \"15s\")");
        }
        if self.gateway.max_fills == 0 {
            bail!("gateway.max_fills must be at least 1 (e.g. 16)");
        }
        if self.gateway.max_connections == 0 {
            bail!("gateway.max_connections must be at least 1 (e.g. 4096)");
        }
        if self.shutdown_grace.is_zero() {
            bail!("shutdown_grace must be more than 0 (e.g. \"10s\")");
        }
        if self.cache.list_ttl.is_zero() {
            bail!("cache.list_ttl must be more than 0 (e.g. \"60s\")");
        }
        if let Some(url) = &self.gateway.advertise_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("gateway.advertise_url {url:?} must be a URL such as \"http://n1.example:8080\"");
            }
        }
        for (i, db) in self.sumdb.iter().enumerate() {
            db.validate().map_err(anyhow::Error::msg)?;
            if self.sumdb[..i].iter().any(|d| d.name == db.name) {
                bail!("sumdb {:?} is configured twice", db.name);
            }
        }
        let peers = self.cluster.peer_map()?;
        self.replication.validate(peers.len().max(1))?;
        if !peers.is_empty() {
            if !peers.contains_key(&self.node_id) {
                bail!("node_id {} is not in cluster.peers ({})", self.node_id, self.cluster.peers.join(", "));
            }
            if self.cluster.secret_file.is_none() {
                bail!("cluster.secret_file is required when cluster.peers is set (the same secret on every node)");
            }
            self.cluster.tls_files()?;
            if let Some(listen) = self.admin.listen {
                bail!("admin.listen ({listen}) is for a single node: a cluster node serves the admin API on its cluster port; remove admin.listen");
            }
        } else if self.admin.token_file.is_some() && self.admin.listen.is_none() {
            bail!("admin.token_file is set but admin.listen is not: a single node serves the admin API on admin.listen (e.g. \"127.0.0.1:7000\")");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
