//! `[cluster]`: peers, the secret, the cluster port's TLS files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// Cluster gRPC listen address (raft, later blobs and admin).
    pub listen: Option<SocketAddr>,
    /// Every voter as `id=host:port`, identical on all nodes. Empty: single node.
    #[serde(deserialize_with = "peers_list")]
    pub peers: Vec<String>,
    /// File holding the shared cluster secret (required with peers).
    pub secret_file: Option<PathBuf>,
    /// Mutual TLS on the cluster port: the cluster CA (PEM), this node's
    /// certificate naming `node-<node_id>` and its key (`flotilla certs`
    /// makes them). Required with peers unless `insecure_plaintext`.
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The cluster's id (what `data_dir/cluster-id` records). Unset: derived
    /// from the secret. Set it (same on every node) to rotate the secret
    /// without wiping data: the id then no longer depends on the secret.
    pub id: Option<String>,
    /// Serve and call the cluster port without TLS (the secret travels in
    /// clear): only for a network nobody else can reach.
    pub insecure_plaintext: bool,
    /// Join a running cluster instead of forming one: the node does not
    /// bootstrap a membership from `peers` and waits until the primary adds
    /// it (`flotillactl members add`). Its `peers` lists the members it may
    /// reach first and itself.
    pub join: bool,
}

/// `peers` as a TOML array or, from the environment, one comma-separated string.
fn peers_list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Peers {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Peers::deserialize(d)? {
        Peers::One(s) => s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect(),
        Peers::Many(v) => v,
    })
}

impl ClusterSection {
    /// The TLS files, `None` with `insecure_plaintext`; an error naming the
    /// fix when the two are mixed or files are missing.
    pub fn tls_files(&self) -> Result<Option<proto::tls::TlsFiles>> {
        let (ca, cert, key) = (&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file);
        if self.insecure_plaintext {
            if ca.is_some() || cert.is_some() || key.is_some() {
                bail!("cluster.insecure_plaintext = true and cluster.tls_* files are both set: remove one (TLS is the safe choice)");
            }
            return Ok(None);
        }
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => {
                Ok(Some(proto::tls::TlsFiles { ca_file: ca.clone(), cert_file: cert.clone(), key_file: key.clone() }))
            }
            (None, None, None) => bail!(
                "the cluster port needs TLS: set cluster.tls_ca_file, cluster.tls_cert_file and cluster.tls_key_file \
                 (`flotilla certs --nodes N --out DIR` makes a CA and node certificates), or set \
                 cluster.insecure_plaintext = true on a network nobody else can reach"
            ),
            _ => bail!("set all three of cluster.tls_ca_file, cluster.tls_cert_file and cluster.tls_key_file (or none, with cluster.insecure_plaintext = true)"),
        }
    }

    /// `peers` parsed into id → `host:port`, with an error naming the bad entry.
    pub fn peer_map(&self) -> Result<BTreeMap<u64, String>> {
        let mut out = BTreeMap::new();
        for entry in &self.peers {
            let Some((id, addr)) = entry.split_once('=') else {
                bail!("cluster.peers entry {entry:?} must look like \"1=host:7000\"");
            };
            let id: u64 = id.trim().parse().with_context(|| format!("cluster.peers entry {entry:?}: {id:?} is not a node id"))?;
            if id == 0 || addr.trim().is_empty() || !addr.contains(':') {
                bail!("cluster.peers entry {entry:?} must look like \"1=host:7000\" (id ≥ 1, address with port)");
            }
            if out.insert(id, addr.trim().to_string()).is_some() {
                bail!("cluster.peers names node {id} twice");
            }
        }
        Ok(out)
    }
}
