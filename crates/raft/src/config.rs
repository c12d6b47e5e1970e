//! How a node takes part in the cluster: its id, the static peers, timing,
//! snapshot policy and the cluster's identity.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// Raft settings of one node: its identity in the cluster, and the
/// [`RaftSettings`] every node may tune.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub node_id: u64,
    /// Every voter of the cluster, this node included: id → cluster gRPC
    /// `host:port`. Every node derives the same bootstrap membership from it.
    pub peers: BTreeMap<u64, String>,
    pub settings: RaftSettings,
    /// Shared secret every cluster RPC carries.
    pub secret: String,
    /// Identity of the cluster, recorded in the data dir on first start and
    /// sent with every RPC, so nodes and data of different clusters never mix.
    pub cluster_id: String,
    /// How the cluster port is reached and secured (plaintext or mutual TLS).
    pub transport: proto::tls::Transport,
    /// Join a running cluster (`cluster.join`): never bootstrap a
    /// membership; wait until the primary adds this node.
    pub join: bool,
}

/// Timing and snapshot policy: the `[raft]` section of the node's
/// configuration.
///
/// # Timing
///
/// openraft 0.9 makes a follower that has a leader wait out the leader lease
/// (`election_timeout_max`) *plus* its randomised election timeout (between
/// `election_timeout_min` and `election_timeout_max`) before it campaigns, so
///
/// ```text
/// failover ≈ election_timeout_max + rand(election_timeout_min .. election_timeout_max)
/// ```
///
/// (openraft draws each node's random timeout once, at start). The defaults
/// (heartbeat 100 ms, elections 300–600 ms) give 0.9–1.2 s plus a round of
/// votes, for the goal of p50 ≤ 1.5 s and max ≤ 3 s; heartbeat 250 ms with
/// 1–2 s elections would fail over in 3–4 s. Known tail: if the follower that
/// fires first has the shorter log it is refused, and if the other one ever
/// saw a longer log in a vote reply (e.g. at bootstrap), openraft adds
/// `2 × election_timeout_max` to that one's timer: about 2.4 s then.
///
/// The heartbeat is also the timeout of one AppendEntries round trip, disk
/// sync included. Slow settings such as 3 s / 10 s–20 s are accepted; openraft
/// only needs
/// `heartbeat < election_timeout_min < election_timeout_max`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    #[serde(with = "humantime_serde")]
    pub election_timeout_min: Duration,
    #[serde(with = "humantime_serde")]
    pub election_timeout_max: Duration,
    /// Build a snapshot after this many entries since the last one
    /// (followers that lag further behind are sent the snapshot).
    pub snapshot_every: u64,
}

pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(100);
pub const DEFAULT_ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(300);
pub const DEFAULT_ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(600);
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 5000;

/// Time allowed for sending one snapshot chunk, and for the last one also
/// installing the whole snapshot on the receiver (a catalog of GBs takes
/// tens of seconds; a shorter timeout would restart the transfer forever).
const INSTALL_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Entries per AppendEntries at most; the byte budget ([`batch_budget`])
/// usually ends a batch first.
const MAX_PAYLOAD_ENTRIES: u64 = 256;

/// The largest encoded command (its JSON in the log) that is proposed: one
/// entry always fits in the smallest batch budget, so no entry can stall
/// the log. Larger catalog writes are answered from upstream without being
/// committed (the gateway's `relay`).
pub const MAX_COMMAND_BYTES: usize = MIN_BATCH_BYTES - ENTRY_OVERHEAD;
/// What an entry adds around its command: log id and payload tags (about
/// 100 bytes of JSON).
const ENTRY_OVERHEAD: usize = 4 << 10;
/// Bounds of the bytes of entries one AppendEntries carries.
const MIN_BATCH_BYTES: usize = 1 << 20;
const MAX_BATCH_BYTES: usize = 4 << 20;
/// The end-to-end rate the batch budget assumes (see [`batch_budget`]).
const BATCH_BYTES_PER_SECOND: u64 = 20 << 20;

/// The most bytes of log entries (their JSON, as stored and as sent) one
/// AppendEntries carries; a batch is cut after the entry that reaches it,
/// and always holds at least one entry.
///
/// openraft gives each AppendEntries one heartbeat to be encoded, sent,
/// decoded, synced to the follower's disk and answered, and sends the same
/// range again after a timeout: a batch that cannot make it in one heartbeat
/// never makes it, and a follower that is behind never catches up. At a
/// conservative 20 MiB/s end to end (a 1 Gbit/s link moves 120 MB/s; JSON
/// decoding and the fsync take the rest), the default 100 ms heartbeat
/// carries 2 MiB. Never less than 1 MiB (every entry fits alone, see
/// [`MAX_COMMAND_BYTES`]) nor more than 4 MiB (far below the 64 MiB message
/// limit; larger batches save nothing measurable).
pub(crate) fn batch_budget(heartbeat: Duration) -> usize {
    let bytes = BATCH_BYTES_PER_SECOND.saturating_mul(heartbeat.as_millis() as u64) / 1000;
    (bytes.min(MAX_BATCH_BYTES as u64) as usize).max(MIN_BATCH_BYTES)
}
/// Applied logs kept after a snapshot, so a follower that is briefly behind
/// catches up from the log instead of a whole snapshot.
const MAX_LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1000;

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat: DEFAULT_HEARTBEAT,
            election_timeout_min: DEFAULT_ELECTION_TIMEOUT_MIN,
            election_timeout_max: DEFAULT_ELECTION_TIMEOUT_MAX,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

impl Default for RaftConfig {
    /// The default timing and snapshot policy; the identity fields are empty
    /// and must be set.
    fn default() -> Self {
        RaftConfig {
            node_id: 0,
            peers: BTreeMap::new(),
            settings: RaftSettings::default(),
            secret: String::new(),
            cluster_id: String::new(),
            transport: proto::tls::Transport::Plaintext,
            join: false,
        }
    }
}

impl RaftConfig {
    /// Checks what openraft and the cluster need, with an error that names the fix.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |msg: String| Err(Error::Config(msg));
        let (hb, min, max) = (
            self.settings.heartbeat.as_millis(),
            self.settings.election_timeout_min.as_millis(),
            self.settings.election_timeout_max.as_millis(),
        );
        if hb == 0 {
            return bad(format!("raft.heartbeat must be at least 1ms, got {:?}", self.settings.heartbeat));
        }
        if !(hb < min && min < max) {
            return bad(format!(
                "raft timing must satisfy heartbeat < election_timeout_min < election_timeout_max, got {hb}ms, {min}ms, {max}ms \
                 (e.g. 100ms, 400ms, 800ms)"
            ));
        }
        if self.settings.snapshot_every == 0 {
            return bad("raft.snapshot_every must be at least 1".into());
        }
        if !self.peers.contains_key(&self.node_id) {
            let ids: Vec<String> = self.peers.keys().map(u64::to_string).collect();
            return bad(format!("node_id {} is not among cluster.peers (ids {})", self.node_id, ids.join(", ")));
        }
        if let Some((id, _)) = self.peers.iter().find(|(_, addr)| addr.trim().is_empty()) {
            return bad(format!("cluster.peers: node {id} has an empty address; want host:port"));
        }
        if self.secret.is_empty() {
            return bad("the cluster secret is empty; set cluster.secret_file to a file with a shared secret".into());
        }
        if self.cluster_id.is_empty() {
            return bad("the cluster id is empty".into());
        }
        Ok(())
    }

    pub(crate) fn openraft_config(&self) -> Result<openraft::Config, Error> {
        let config = openraft::Config {
            cluster_name: self.cluster_id.clone(),
            heartbeat_interval: self.settings.heartbeat.as_millis() as u64,
            election_timeout_min: self.settings.election_timeout_min.as_millis() as u64,
            election_timeout_max: self.settings.election_timeout_max.as_millis() as u64,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT.as_millis() as u64,
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.settings.snapshot_every),
            // Openraft sends a snapshot only when the log a follower needs is
            // purged; keeping at most `snapshot_every` logs after a snapshot
            // makes that happen for a follower that is far behind.
            max_in_snapshot_log_to_keep: self.settings.snapshot_every.min(MAX_LOGS_KEPT_AFTER_SNAPSHOT),
            replication_lag_threshold: self.settings.snapshot_every,
            ..Default::default()
        };
        config.validate().map_err(|e| Error::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hb: u64, min: u64, max: u64) -> RaftConfig {
        RaftConfig {
            node_id: 1,
            peers: BTreeMap::from([(1, "127.0.0.1:7000".to_string())]),
            settings: RaftSettings {
                heartbeat: Duration::from_millis(hb),
                election_timeout_min: Duration::from_millis(min),
                election_timeout_max: Duration::from_millis(max),
                ..RaftSettings::default()
            },
            secret: "s".into(),
            cluster_id: "c".into(),
            transport: proto::tls::Transport::Plaintext,
            join: false,
        }
    }

    #[test]
    fn default_and_seed_timings_are_accepted() {
        config(100, 400, 800).validate().unwrap();
        config(3000, 10_000, 20_000).validate().unwrap();
        config(3000, 10_000, 20_000).openraft_config().unwrap();
    }

    #[test]
    fn timing_out_of_order_is_refused_with_the_rule() {
        for (hb, min, max) in [(400, 400, 800), (100, 800, 800), (100, 900, 800), (0, 400, 800)] {
            let err = config(hb, min, max).validate().unwrap_err().to_string();
            assert!(err.contains("heartbeat"), "{err}");
        }
    }

    #[test]
    fn the_batch_budget_follows_the_heartbeat_within_bounds() {
        assert_eq!(batch_budget(Duration::from_millis(100)), 2 << 20);
        assert_eq!(batch_budget(Duration::from_millis(150)), 3 << 20);
        assert_eq!(batch_budget(Duration::from_millis(1)), 1 << 20, "never below one whole entry");
        assert_eq!(batch_budget(Duration::from_secs(3)), 4 << 20, "never above 4 MiB");
        assert!(MAX_COMMAND_BYTES + ENTRY_OVERHEAD <= batch_budget(Duration::ZERO));
    }

    #[test]
    fn node_must_be_a_peer() {
        let mut cfg = config(100, 400, 800);
        cfg.node_id = 9;
        assert!(cfg.validate().unwrap_err().to_string().contains("node_id 9"));
    }
}
