//! The raft settings of this node, derived from its configuration.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use proto::tls::{ClusterTls, Transport};
use raft::RaftConfig;

use crate::config::Config;

/// The raft settings of this node, from its configuration.
pub fn raft_config(config: &Config) -> Result<RaftConfig> {
    let peers = config.cluster.peer_map()?;
    let secret_file = config.cluster.secret_file.as_ref().context("cluster.secret_file is required in cluster mode")?;
    let secret = crate::config::read_secret_file(secret_file, "cluster.secret_file")?;
    let transport = transport(config)?;
    // `cluster.id` pins the id, so the secret can change (rotation) while
    // the data directories stay the cluster's.
    let cluster_id = match &config.cluster.id {
        Some(id) => id.trim().to_string(),
        None => cluster::id_from_secret(&secret),
    };
    let cfg = RaftConfig {
        node_id: config.node_id,
        peers,
        settings: config.raft.clone(),
        cluster_id,
        secret,
        transport,
        join: config.cluster.join,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Mutual TLS with this node's certificate, or plaintext when
/// `cluster.insecure_plaintext` says so.
fn transport(config: &Config) -> Result<Transport> {
    let Some(files) = config.cluster.tls_files()? else {
        return Ok(Transport::Plaintext);
    };
    let tls = ClusterTls::load(&files).map_err(|e| anyhow::anyhow!("cluster TLS: {e}"))?;
    let want = proto::tls::node_name(config.node_id);
    let own = std::fs::read(&files.cert_file).with_context(|| format!("cannot read {}", files.cert_file.display()))?;
    if !proto::tls::pem_names_node(&own, config.node_id) {
        bail!(
            "cluster.tls_cert_file {} does not name this node ({want}); give node {} its own certificate (`flotilla certs`)",
            files.cert_file.display(),
            config.node_id
        );
    }
    Ok(Transport::Tls(Arc::new(tls)))
}

/// This node's cluster listen address: `cluster.listen`, or the port of its
/// own entry in `cluster.peers` on all interfaces.
pub fn listen_addr(config: &Config, raft: &RaftConfig) -> Result<SocketAddr> {
    if let Some(addr) = config.cluster.listen {
        return Ok(addr);
    }
    let own = raft.peers.get(&raft.node_id).context("node_id is not in cluster.peers")?;
    let port: u16 = own
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("cluster.peers entry for node {} ({own}) has no port", raft.node_id))?;
    Ok(SocketAddr::from(([0, 0, 0, 0], port)))
}
