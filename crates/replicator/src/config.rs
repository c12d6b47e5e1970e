//! `[replication]` settings.

use std::time::Duration;

use serde::Deserialize;

use crate::{Error, Result};

/// How a node replicates blobs: the `[replication]` section of the node's
/// configuration (cluster mode only). Defaults are for production; tests
/// shorten the intervals.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// Blobs pulled at once.
    pub workers: usize,
    /// Nodes that must hold a freshly fetched zip before the primary answers
    /// the client (1: the primary alone).
    pub min_copies: usize,
    /// How long the primary waits for `min_copies` before answering 503.
    #[serde(with = "humantime_serde")]
    pub min_copies_timeout: Duration,
    /// Incoming replication bytes per second on this node; 0: unlimited.
    #[serde(deserialize_with = "byte_size")]
    pub bandwidth_limit: u64,
    /// Pause between full comparisons of the catalog with the local blobs.
    #[serde(with = "humantime_serde")]
    pub anti_entropy_interval: Duration,
    /// Pause between full scrub passes (re-hashing every stored blob).
    #[serde(with = "humantime_serde")]
    pub scrub_interval: Duration,
    /// Bytes per second a scrub pass reads; 0 disables scrubbing.
    #[serde(deserialize_with = "byte_size")]
    pub scrub_rate: u64,
    /// How long a blob no catalog entry references is kept before deletion.
    #[serde(with = "humantime_serde")]
    pub purge_grace: Duration,
    /// Longest pause between retries of a failing blob.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            workers: 4,
            min_copies: 1,
            min_copies_timeout: Duration::from_secs(10),
            bandwidth_limit: 0,
            anti_entropy_interval: Duration::from_secs(300),
            scrub_interval: Duration::from_secs(24 * 3600),
            scrub_rate: 50 << 20,
            purge_grace: Duration::from_secs(3600),
            retry_max: Duration::from_secs(30),
        }
    }
}

impl ReplicationConfig {
    pub fn validate(&self, members: usize) -> Result<()> {
        if self.workers == 0 || self.workers > 256 {
            return Err(Error::Config(format!("replication.workers must be between 1 and 256, not {}", self.workers)));
        }
        if self.min_copies == 0 || (members > 0 && self.min_copies > members) {
            return Err(Error::Config(format!(
                "replication.min_copies must be between 1 and the number of cluster members ({members}), not {}",
                self.min_copies
            )));
        }
        let at_least = |name: &str, value: Duration, min: Duration, why: &str| {
            if value < min {
                return Err(Error::Config(format!("replication.{name} must be at least {min:?}, not {value:?} ({why})")));
            }
            Ok(())
        };
        at_least("anti_entropy_interval", self.anti_entropy_interval, Duration::from_secs(1), "each pass scans the whole catalog")?;
        at_least("retry_max", self.retry_max, Duration::from_millis(250), "retries start 250ms apart and double up to it")?;
        at_least("min_copies_timeout", self.min_copies_timeout, Duration::from_millis(100), "how long a miss waits for copies")?;
        if self.scrub_rate > 0 {
            at_least(
                "scrub_interval",
                self.scrub_interval,
                Duration::from_secs(1),
                "each pass re-hashes every blob; scrub_rate = 0 turns it off",
            )?;
        }
        Ok(())
    }
}

pub use api::{byte_size, parse_bytes};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_bytes("100 MB").unwrap(), 100_000_000);
        assert_eq!(parse_bytes("1.5GiB").unwrap(), 3 << 29);
        assert!(parse_bytes("fast").unwrap_err().to_string().contains("is not a size"));
        assert!(parse_bytes("3 parsecs").unwrap_err().to_string().contains("unknown unit"));
    }

    #[test]
    fn validation() {
        assert!(ReplicationConfig::default().validate(3).is_ok());
        let bad = ReplicationConfig { min_copies: 4, ..Default::default() };
        assert!(bad.validate(3).unwrap_err().to_string().contains("min_copies"));
        let bad = ReplicationConfig { workers: 0, ..Default::default() };
        assert!(bad.validate(3).unwrap_err().to_string().contains("workers"));
    }

    #[test]
    fn busy_loops_and_hot_retries_are_refused() {
        let ok = ReplicationConfig::default();
        let cases: [(&str, ReplicationConfig); 4] = [
            ("anti_entropy_interval", ReplicationConfig { anti_entropy_interval: Duration::ZERO, ..ok.clone() }),
            ("retry_max", ReplicationConfig { retry_max: Duration::ZERO, ..ok.clone() }),
            ("min_copies_timeout", ReplicationConfig { min_copies_timeout: Duration::ZERO, ..ok.clone() }),
            ("scrub_interval", ReplicationConfig { scrub_interval: Duration::ZERO, ..ok.clone() }),
        ];
        for (name, cfg) in cases {
            let err = cfg.validate(3).unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
        ReplicationConfig { scrub_interval: Duration::ZERO, scrub_rate: 0, ..ok }.validate(3).unwrap();
    }
}
