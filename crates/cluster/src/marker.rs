//! The cluster id and the `data_dir/cluster-id` marker that ties a data
//! directory to one cluster.

use std::path::Path;

use sha2::Digest;

use crate::Error;

/// The cluster id when `cluster.id` is not set, from the secret: every
/// node of a new cluster derives the same one without talking to the
/// others, and data or RPCs of a cluster with another secret are refused.
/// The id is a hash, so it reveals nothing. To rotate the secret, pin the
/// id (`cluster.id`) first: it then no longer depends on the secret.
pub fn id_from_secret(secret: &str) -> String {
    let digest = sha2::Sha256::digest(format!("flotilla-cluster\n{secret}").as_bytes());
    hex::encode(&digest[..8])
}

const MARKER: &str = "cluster-id";

/// Refuses, before the database is even opened, a data directory that
/// another cluster created (raft checks it again in its own
/// metadata; this check also keeps the files untouched).
pub fn check_marker(data_dir: &Path, cluster_id: &str) -> Result<(), Error> {
    match std::fs::read_to_string(data_dir.join(MARKER)) {
        Ok(stored) if stored.trim() != cluster_id => {
            Err(Error::OtherCluster { data_dir: data_dir.into(), stored: stored.trim().to_string(), configured: cluster_id.to_string() })
        }
        _ => Ok(()),
    }
}

pub fn write_marker(data_dir: &Path, cluster_id: &str) -> Result<(), Error> {
    let path = data_dir.join(MARKER);
    if !path.exists() {
        std::fs::write(&path, format!("{cluster_id}\n")).map_err(|source| Error::WriteMarker { path, source })?;
    }
    Ok(())
}
