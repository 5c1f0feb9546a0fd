//! The broker's effective settings: what `ringbroker serve` resolved from defaults, the config
//! file, the environment, the tuning profile and flags. Every limit the broker enforces is a named
//! field here, documented once. The few settings that may change while the broker runs (SIGHUP)
//! live in [`LiveSettings`], shared by every shard and read where they are used.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::cluster::ClusterConfig;
use crate::storage::LogConfig;

/// Default Kafka listener address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9092";
/// Default address of the metrics endpoint (`/metrics`, `/health`, `/ready`).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9644";
/// Default data directory (relative to the working directory, like Kafka's quickstart).
pub const DEFAULT_DATA_DIR: &str = "./ringbroker-data";
/// glommio io memory per executor. glommio registers it on ~3 rings per executor; under this
/// machine's 8 MiB RLIMIT_MEMLOCK, 1 MiB keeps two shards well within the limit (docs/ARCHITECTURE.md section 11).
pub const DEFAULT_IO_MEMORY_BYTES: usize = 1 << 20;
/// Default io_uring ring depth per executor.
pub const DEFAULT_RING_DEPTH: usize = 128;
/// Cap on concurrent client connections per broker when no profile was resolved (tests); the
/// profile's "auto" derives it from the file descriptor limit instead.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default of `connections_max_write_stall_ms`: a connection whose peer accepts none of a pending
/// response for this long is closed. 30 s is far longer than any reading client pauses (a full
/// socket buffer drains in milliseconds on any working network).
pub const DEFAULT_CONNECTIONS_MAX_WRITE_STALL_MS: u64 = 30_000;
/// Default cap on requests read ahead of their responses on one connection (clients pipeline
/// up to 5 by default; beyond the cap we stop reading, which is TCP backpressure).
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: usize = 32;
/// Default of `connections_max_idle_ms`: Kafka's `connections.max.idle.ms` (10 minutes).
pub const DEFAULT_CONNECTIONS_MAX_IDLE_MS: u64 = 600_000;
/// Default of `request_read_timeout_ms`: a frame (its size prefix, then its body) must arrive
/// within this long, or the client is a slow-loris and is cut off. 30 s is far above what a
/// 100 MiB frame needs on any working network.
pub const DEFAULT_REQUEST_READ_TIMEOUT_MS: u64 = 30_000;
/// Default of `max_in_flight_bytes_per_connection`: request bytes read from one connection and
/// not yet answered. 2 x the default max_request_bytes lets a client pipeline its usual 5 produce
/// requests of 1 MiB; beyond it the broker stops reading that socket until responses drain.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES_PER_CONNECTION: usize = 200 << 20;
/// Default cap on partitions per topic at creation.
pub const DEFAULT_MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// Default capacity of each cross-shard channel, in messages.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;
/// Default `log_cleaner_interval_ms`: how often a compacted topic's partition is checked for
/// cleanable segments (Kafka's `log.cleaner.backoff.ms` is 15 s; a check with nothing to clean
/// costs a few comparisons and one small file read).
pub const DEFAULT_LOG_CLEANER_INTERVAL_MS: u64 = 5_000;
/// Default `log.retention.ms` of the broker (the `retention.ms` of topics that do not set it):
/// Kafka's 7 days.
pub const DEFAULT_LOG_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Default `log.retention.bytes` of the broker: unlimited, as in Kafka.
pub const DEFAULT_LOG_RETENTION_BYTES: i64 = -1;

/// Settings a running broker takes without a restart (`ringbroker serve` reloads them on SIGHUP).
/// One instance is shared by every shard; each value is read where it is used (the retention task,
/// topic config defaults, shutdown), never on the per-record path, so relaxed atomics suffice: a
/// change is seen by the next pass that reads it.
#[derive(Debug)]
pub struct LiveSettings {
    log_retention_ms: AtomicI64,
    log_retention_bytes: AtomicI64,
    log_cleaner_interval_ms: AtomicU64,
    log_cleaner_max_keys: AtomicUsize,
    shutdown_drain_ms: AtomicU64,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            log_retention_ms: AtomicI64::new(DEFAULT_LOG_RETENTION_MS),
            log_retention_bytes: AtomicI64::new(DEFAULT_LOG_RETENTION_BYTES),
            log_cleaner_interval_ms: AtomicU64::new(DEFAULT_LOG_CLEANER_INTERVAL_MS),
            log_cleaner_max_keys: AtomicUsize::new(crate::storage::compaction::DEFAULT_MAX_KEYS),
            shutdown_drain_ms: AtomicU64::new(0),
        }
    }
}

impl LiveSettings {
    /// `log.retention.ms`: the `retention.ms` of topics that do not set their own (-1: forever).
    pub fn log_retention_ms(&self) -> i64 {
        self.log_retention_ms.load(Ordering::Relaxed)
    }
    pub fn set_log_retention_ms(&self, ms: i64) {
        debug_assert!(ms >= -1, "retention is -1 (forever) or a duration");
        self.log_retention_ms.store(ms, Ordering::Relaxed);
    }
    /// `log.retention.bytes`: the `retention.bytes` of topics that do not set their own (-1: no
    /// limit).
    pub fn log_retention_bytes(&self) -> i64 {
        self.log_retention_bytes.load(Ordering::Relaxed)
    }
    pub fn set_log_retention_bytes(&self, bytes: i64) {
        debug_assert!(bytes >= -1, "retention is -1 (no limit) or a size");
        self.log_retention_bytes.store(bytes, Ordering::Relaxed);
    }
    /// Least time between two compaction passes of one partition (`log_cleaner_interval_ms`).
    pub fn log_cleaner_interval_ms(&self) -> u64 {
        self.log_cleaner_interval_ms.load(Ordering::Relaxed)
    }
    pub fn set_log_cleaner_interval_ms(&self, ms: u64) {
        self.log_cleaner_interval_ms.store(ms, Ordering::Relaxed);
    }
    /// Keys in the cleaner's offset map per pass (`log_cleaner_max_keys`, Kafka's
    /// `log.cleaner.dedupe.buffer.size` in keys); a pass that fills it cleans up to where it got.
    pub fn log_cleaner_max_keys(&self) -> usize {
        self.log_cleaner_max_keys.load(Ordering::Relaxed)
    }
    pub fn set_log_cleaner_max_keys(&self, keys: usize) {
        debug_assert!(keys > 0, "an offset map holds at least one key");
        self.log_cleaner_max_keys.store(keys, Ordering::Relaxed);
    }
    /// How long a stopping broker keeps serving after `/ready` turned 503, so that load balancers
    /// stop sending clients before the listeners close.
    pub fn shutdown_drain_ms(&self) -> u64 {
        self.shutdown_drain_ms.load(Ordering::Relaxed)
    }
    pub fn set_shutdown_drain_ms(&self, ms: u64) {
        self.shutdown_drain_ms.store(ms, Ordering::Relaxed);
    }
}

/// Everything a broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds on (one SO_REUSEPORT listener per shard).
    pub listen: SocketAddr,
    /// host:port given to clients in Metadata (defaults to `listen`).
    pub advertised_host: String,
    pub advertised_port: u16,
    /// This broker's node id (Kafka `node.id`).
    pub node_id: i32,
    /// Security protocols of the listeners, TLS and SASL (`security`).
    pub security: crate::security::SecurityConfig,
    /// Roles, controller quorum and registration settings (a single-node cluster by default).
    pub cluster: ClusterConfig,
    pub data_dir: PathBuf,
    /// CPU of each shard, one entry per shard; `None` means unpinned.
    pub shard_cpus: Vec<Option<usize>>,
    pub io_memory_bytes: usize,
    pub ring_depth: usize,
    /// Create unknown topics on Metadata requests (Kafka `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic and of CreateTopics with -1 (Kafka `num.partitions`).
    pub default_partitions: i32,
    pub max_partitions_per_topic: i32,
    /// Largest request frame accepted (Kafka `socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Largest record batch accepted (Kafka `message.max.bytes`, default 1 MiB + overhead).
    pub max_message_bytes: usize,
    /// Client connections the broker holds at once (Kafka `max.connections`).
    pub max_connections: usize,
    /// Connections from one client address (Kafka `max.connections.per.ip`); `None`: unlimited.
    pub max_connections_per_ip: Option<u64>,
    /// Per-address exceptions (Kafka `max.connections.per.ip.overrides`).
    pub max_connections_per_ip_overrides: Vec<(std::net::IpAddr, u64)>,
    pub max_in_flight_requests: usize,
    /// A connection with no request for this long is closed (Kafka `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// A frame's size prefix and then its body must each arrive within this long (slow-loris cut).
    pub request_read_timeout_ms: u64,
    /// A connection whose peer accepts no byte of a pending response for this long is closed.
    pub connections_max_write_stall_ms: u64,
    /// Request bytes read from one connection and not yet answered; at the cap the broker stops
    /// reading that socket (TCP backpressure). A larger single request is admitted alone.
    pub max_in_flight_bytes_per_connection: usize,
    /// Per-partition log settings (segment size, flush policy, caches).
    pub log: LogConfig,
    /// Address of the metrics endpoint; `None` disables the endpoint and all recording.
    pub metrics_listen: Option<SocketAddr>,
    /// Settings that may change while the broker runs (one instance shared by every shard).
    pub live: Arc<LiveSettings>,
    /// Session timeout of consumer-protocol group members (`group_consumer_session_timeout_ms`).
    pub group_consumer_session_timeout_ms: u64,
    /// Heartbeat interval told to consumer-protocol group members (`group_consumer_heartbeat_interval_ms`).
    pub group_consumer_heartbeat_interval_ms: u64,
    /// Longest `transaction.timeout.ms` a producer may ask for (`transaction_max_timeout_ms`).
    pub transaction_max_timeout_ms: i32,
    /// Kafka's `transaction.partition.verification.enable` (KIP-890): a partition leader asks the
    /// transaction coordinator before appending a transaction's first batch there, and the group
    /// coordinator before accepting a TxnOffsetCommit, so a partition outside the transaction
    /// never holds an open (hanging) transaction.
    pub transaction_partition_verification: bool,
}

impl BrokerConfig {
    /// Kafka's default `message.max.bytes`.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

    /// Every client listener: the primary one (`listen`, advertised as `advertised_host:port`)
    /// first, then the further ones.
    pub fn client_listeners(&self) -> Vec<crate::security::ClientListener> {
        let primary = crate::security::ClientListener {
            name: self.security.primary_name.clone(),
            protocol: self.security.primary_protocol,
            address: self.listen,
            advertised_host: self.advertised_host.clone(),
            advertised_port: self.advertised_port,
        };
        std::iter::once(primary)
            .chain(self.security.extra_listeners.iter().cloned())
            .collect()
    }

    pub fn shard_count(&self) -> usize {
        self.shard_cpus.len()
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listen: SocketAddr = DEFAULT_LISTEN
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9092)));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        BrokerConfig {
            listen,
            advertised_host: listen.ip().to_string(),
            advertised_port: listen.port(),
            node_id: 0,
            security: crate::security::SecurityConfig::default(),
            cluster: ClusterConfig::single_node(0),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            shard_cpus: (0..cpus).map(Some).collect(),
            io_memory_bytes: DEFAULT_IO_MEMORY_BYTES,
            ring_depth: DEFAULT_RING_DEPTH,
            auto_create_topics: true,
            default_partitions: 1,
            max_partitions_per_topic: DEFAULT_MAX_PARTITIONS_PER_TOPIC,
            max_request_bytes: ringbroker_protocol::frame::DEFAULT_MAX_REQUEST_BYTES,
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: None,
            max_connections_per_ip_overrides: Vec::new(),
            max_in_flight_requests: DEFAULT_MAX_IN_FLIGHT_REQUESTS,
            connections_max_idle_ms: DEFAULT_CONNECTIONS_MAX_IDLE_MS,
            request_read_timeout_ms: DEFAULT_REQUEST_READ_TIMEOUT_MS,
            connections_max_write_stall_ms: DEFAULT_CONNECTIONS_MAX_WRITE_STALL_MS,
            max_in_flight_bytes_per_connection: DEFAULT_MAX_IN_FLIGHT_BYTES_PER_CONNECTION,
            log: LogConfig::default(),
            metrics_listen: DEFAULT_METRICS_LISTEN.parse().ok(),
            live: Arc::new(LiveSettings::default()),
            group_consumer_session_timeout_ms: crate::groups::DEFAULT_CONSUMER_SESSION_TIMEOUT_MS,
            transaction_max_timeout_ms:
                crate::transactions::config::DEFAULT_TRANSACTION_MAX_TIMEOUT_MS,
            transaction_partition_verification: true,
            group_consumer_heartbeat_interval_ms: u64::try_from(
                crate::groups::DEFAULT_CONSUMER_HEARTBEAT_INTERVAL_MS,
            )
            .unwrap_or(5_000),
        }
    }
}
