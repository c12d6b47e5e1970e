use std::sync::atomic::AtomicU64;
use std::time::Duration;

use api::{ClusterStatus, Lag, ReplicationStatus};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DbKind {
    pub db: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    pub node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindOutcome {
    pub kind: &'static str,
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The node's Prometheus metrics (names in README.md).
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RouteStatus, Counter>,
    pub cache_hits: Family<Kind, Counter>,
    pub cache_misses: Family<Kind, Counter>,
    pub upstream_fetches: Family<KindOutcome, Counter>,
    pub upstream_seconds: Family<Kind, Histogram, fn() -> Histogram>,
    pub bytes_served: Counter,
    /// Zip bytes the kernel sent straight from the page cache (sendfile).
    pub zero_copy_bytes: Counter,
    pub stale_served: Family<Kind, Counter>,
    pub corrupt_blobs: Counter,
    pub sumdb_mismatches: Family<DbKind, Counter>,
    pub blob_bytes: Gauge,
    pub hot_zip_bytes: Gauge,
    pub kept_answer_bytes: Gauge,
    pub blob_count: Gauge,
    pub raft_term: Gauge,
    pub raft_primary: Gauge,
    pub raft_last_applied: Gauge,
    pub raft_committed: Gauge,
    pub replication_queue_blobs: Gauge,
    pub replication_queue_bytes: Gauge,
    pub replication_oldest_missing: Gauge<f64, AtomicU64>,
    pub replication_received: Counter,
    pub replication_sent: Counter,
    pub replication_failures: Counter,
    pub replication_missing_blobs: Family<NodeLabel, Gauge>,
    pub replication_missing_bytes: Family<NodeLabel, Gauge>,
    pub replication_node_oldest_missing: Family<NodeLabel, Gauge<f64, AtomicU64>>,
    /// For each of [`MODULE_FILES`], its `requests` counter with status 200
    /// and its `cache_hits` counter, looked up once: an answer from memory
    /// counts itself without hashing a label set.
    from_memory: [(Counter, Counter); 5],
}

/// The kinds of GOPROXY file, as `route` and `kind` labels.
const MODULE_FILES: [&str; 5] = ["list", "latest", "info", "mod", "zip"];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("flotilla");
        let m = Metrics {
            requests: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            upstream_fetches: Family::default(),
            upstream_seconds: Family::new_with_constructor(latency_histogram),
            bytes_served: Counter::default(),
            zero_copy_bytes: Counter::default(),
            stale_served: Family::default(),
            corrupt_blobs: Counter::default(),
            sumdb_mismatches: Family::default(),
            blob_bytes: Gauge::default(),
            hot_zip_bytes: Gauge::default(),
            kept_answer_bytes: Gauge::default(),
            blob_count: Gauge::default(),
            raft_term: Gauge::default(),
            raft_primary: Gauge::default(),
            raft_last_applied: Gauge::default(),
            raft_committed: Gauge::default(),
            replication_queue_blobs: Gauge::default(),
            replication_queue_bytes: Gauge::default(),
            replication_oldest_missing: Gauge::default(),
            replication_received: Counter::default(),
            replication_sent: Counter::default(),
            replication_failures: Counter::default(),
            replication_missing_blobs: Family::default(),
            replication_missing_bytes: Family::default(),
            replication_node_oldest_missing: Family::default(),
            from_memory: Default::default(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests by route and status", m.requests.clone());
        registry.register("cache_hits", "Requests answered from the local store, by kind", m.cache_hits.clone());
        registry.register("cache_misses", "Requests that needed upstream, by kind", m.cache_misses.clone());
        registry.register("upstream_fetches", "Upstream fetches by kind and outcome", m.upstream_fetches.clone());
        registry.register("upstream_fetch_seconds", "Upstream fetch latency by kind", m.upstream_seconds.clone());
        registry.register("served_bytes", "Response body bytes sent for module files", m.bytes_served.clone());
        registry.register(
            "zero_copy_bytes",
            "Zip bytes sent with sendfile, straight from the page cache (large zips on HTTP/1)",
            m.zero_copy_bytes.clone(),
        );
        registry.register("stale_served", "Lists or @latest served from a stale copy because upstream failed", m.stale_served.clone());
        registry.register("corrupt_blobs", "Stored blobs found corrupt and quarantined", m.corrupt_blobs.clone());
        registry.register(
            "sumdb_mismatch",
            "Security events: answers refused because they disagree with a checksum database (kind: checksum, fork, tile, proof, signature)",
            m.sumdb_mismatches.clone(),
        );
        registry.register("blob_store_bytes", "Bytes of blobs stored on this node", m.blob_bytes.clone());
        registry.register(
            "hot_zip_bytes",
            "Bytes of verified zips kept ready to serve, mapped or copied (cache.memory)",
            m.hot_zip_bytes.clone(),
        );
        registry.register(
            "kept_answer_bytes",
            "Bytes of .info, .mod, list and @latest answers kept in memory (a quarter of cache.memory)",
            m.kept_answer_bytes.clone(),
        );
        registry.register("blob_store_blobs", "Number of blobs stored on this node", m.blob_count.clone());
        registry.register("raft_term", "Current raft term seen by this node", m.raft_term.clone());
        registry.register("raft_acting_primary", "1 while this node acts as primary (leader with a fresh quorum)", m.raft_primary.clone());
        registry.register("raft_last_applied", "Index of the last log entry applied to this node's catalog", m.raft_last_applied.clone());
        registry.register("raft_committed", "Index of the last committed log entry this node knows", m.raft_committed.clone());
        registry.register(
            "replication_queue_blobs",
            "Blobs this node lacks and has queued for replication",
            m.replication_queue_blobs.clone(),
        );
        registry.register(
            "replication_queue_bytes",
            "Bytes of the blobs this node has queued for replication",
            m.replication_queue_bytes.clone(),
        );
        registry.register(
            "replication_oldest_missing_seconds",
            "Age of the oldest blob this node still lacks",
            m.replication_oldest_missing.clone(),
        );
        registry.register("replication_received_bytes", "Blob bytes this node pulled from peers", m.replication_received.clone());
        registry.register("replication_sent_bytes", "Blob bytes this node served to peers", m.replication_sent.clone());
        registry.register("replication_failures", "Failed blob pulls (each is retried)", m.replication_failures.clone());
        registry.register(
            "replication_missing_blobs",
            "Referenced blobs that placement does not list on a node",
            m.replication_missing_blobs.clone(),
        );
        registry.register(
            "replication_missing_bytes",
            "Bytes of referenced blobs that placement does not list on a node",
            m.replication_missing_bytes.clone(),
        );
        registry.register(
            "replication_node_oldest_missing_seconds",
            "Age of the oldest referenced blob that placement does not list on a node",
            m.replication_node_oldest_missing.clone(),
        );
        let from_memory = MODULE_FILES.map(|kind| {
            let requests = m.requests.get_or_create(&RouteStatus { route: kind, status: 200 }).clone();
            (requests, m.cache_hits.get_or_create(&Kind { kind }).clone())
        });
        Metrics { registry, from_memory, ..m }
    }
}

impl Metrics {
    // Label sets of per-request metrics are static strings: counting a
    // request allocates nothing.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests.get_or_create(&RouteStatus { route, status }).inc();
    }

    /// A GOPROXY request answered from memory: its request, its cache hit
    /// and, when successful, the `len` body bytes sent.
    pub fn answered_from_memory(&self, kind: &'static str, status: u16, len: u64) {
        match MODULE_FILES.iter().position(|k| *k == kind) {
            Some(i) if status == 200 => {
                let (requests, hits) = &self.from_memory[i];
                requests.inc();
                hits.inc();
            }
            _ => {
                self.request(kind, status);
                self.hit(kind);
            }
        }
        if (200..300).contains(&status) {
            self.bytes_served.inc_by(len);
        }
    }

    pub fn hit(&self, kind: &'static str) {
        self.cache_hits.get_or_create(&Kind { kind }).inc();
    }

    pub fn miss(&self, kind: &'static str) {
        self.cache_misses.get_or_create(&Kind { kind }).inc();
    }

    pub fn sumdb_mismatch(&self, db: &str, kind: &str) {
        self.sumdb_mismatches.get_or_create(&DbKind { db: db.to_string(), kind: kind.to_string() }).inc();
    }

    pub fn stale(&self, kind: &'static str) {
        self.stale_served.get_or_create(&Kind { kind }).inc();
    }

    pub fn upstream(&self, kind: &'static str, outcome: &'static str, took: Duration) {
        self.upstream_fetches.get_or_create(&KindOutcome { kind, outcome }).inc();
        self.upstream_seconds.get_or_create(&Kind { kind }).observe(took.as_secs_f64());
    }

    /// Sets the raft and replication gauges from the cluster's status.
    pub fn cluster(&self, status: &ClusterStatus) {
        let ClusterStatus::Member(facts) = status else { return };
        self.raft_term.set(facts.term as i64);
        self.raft_primary.set(i64::from(facts.acting_primary));
        if let Some(applied) = facts.last_applied {
            self.raft_last_applied.set(applied as i64);
        }
        if let Some(committed) = facts.committed {
            self.raft_committed.set(committed as i64);
        }
        self.replication(&facts.replication);
    }

    fn replication(&self, r: &ReplicationStatus) {
        self.replication_queue_blobs.set(r.queue.blobs as i64);
        self.replication_queue_bytes.set(r.queue.bytes as i64);
        self.replication_oldest_missing.set(r.queue.oldest_seconds);
        for (counter, total) in [
            (&self.replication_received, r.received_bytes),
            (&self.replication_sent, r.sent_bytes),
            (&self.replication_failures, r.failures),
        ] {
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        }
        if let Lag::Nodes(nodes) = &r.nodes {
            for (node, lag) in nodes {
                let label = NodeLabel { node: node.to_string() };
                self.replication_missing_blobs.get_or_create(&label).set(lag.missing_blobs as i64);
                self.replication_missing_bytes.get_or_create(&label).set(lag.missing_bytes as i64);
                self.replication_node_oldest_missing.get_or_create(&label).set(lag.oldest_missing_seconds);
            }
        }
    }

    pub fn encode(&self) -> String {
        let sent = crate::zerocopy::bytes_sent();
        let seen = self.zero_copy_bytes.get();
        if sent > seen {
            self.zero_copy_bytes.inc_by(sent - seen);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
