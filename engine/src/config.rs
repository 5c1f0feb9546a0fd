//! The broker's effective settings: what `ringbroker serve` resolved from defaults, the tuning
//! profile and flags. Every limit the broker enforces is a named field here, documented once.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::storage::LogConfig;

/// Default Kafka listener address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9092";
/// Default address of the metrics endpoint (`/metrics`, `/health`, `/ready`).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9644";
/// Default data directory (relative to the working directory, like Kafka's quickstart).
pub const DEFAULT_DATA_DIR: &str = "./ringbroker-data";
/// glommio io memory per executor. glommio registers it on ~3 rings per executor; under this
/// machine's 8 MiB RLIMIT_MEMLOCK, 1 MiB keeps two shards well within the limit (DESIGN 7).
pub const DEFAULT_IO_MEMORY_BYTES: usize = 1 << 20;
/// Default io_uring ring depth per executor.
pub const DEFAULT_RING_DEPTH: usize = 128;
/// Default cap on concurrent client connections per broker (split evenly across shards).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
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
    /// Cluster id reported in Metadata.
    pub cluster_id: String,
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
    pub max_connections: usize,
    pub max_in_flight_requests: usize,
    /// A connection with no request for this long is closed (Kafka `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// A frame's size prefix and then its body must each arrive within this long (slow-loris cut).
    pub request_read_timeout_ms: u64,
    /// Request bytes read from one connection and not yet answered; at the cap the broker stops
    /// reading that socket (TCP backpressure). A larger single request is admitted alone.
    pub max_in_flight_bytes_per_connection: usize,
    /// Per-partition log settings (segment size, flush policy, caches).
    pub log: LogConfig,
    /// Address of the metrics endpoint; `None` disables the endpoint and all recording.
    pub metrics_listen: Option<SocketAddr>,
    /// Least time between two compaction passes of one partition (`log_cleaner_interval_ms`).
    pub log_cleaner_interval_ms: u64,
    /// Keys in the cleaner's offset map per pass (`log_cleaner_max_keys`, Kafka's
    /// `log.cleaner.dedupe.buffer.size` in keys); a pass that fills it cleans up to where it got.
    pub log_cleaner_max_keys: usize,
    /// Session timeout of consumer-protocol group members (`group_consumer_session_timeout_ms`).
    pub group_consumer_session_timeout_ms: u64,
    /// Heartbeat interval told to consumer-protocol group members (`group_consumer_heartbeat_interval_ms`).
    pub group_consumer_heartbeat_interval_ms: u64,
}

impl BrokerConfig {
    /// Kafka's default `message.max.bytes`.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

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
            cluster_id: "ringbroker-cluster".to_string(),
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
            max_in_flight_requests: DEFAULT_MAX_IN_FLIGHT_REQUESTS,
            connections_max_idle_ms: DEFAULT_CONNECTIONS_MAX_IDLE_MS,
            request_read_timeout_ms: DEFAULT_REQUEST_READ_TIMEOUT_MS,
            max_in_flight_bytes_per_connection: DEFAULT_MAX_IN_FLIGHT_BYTES_PER_CONNECTION,
            log: LogConfig::default(),
            metrics_listen: DEFAULT_METRICS_LISTEN.parse().ok(),
            log_cleaner_interval_ms: DEFAULT_LOG_CLEANER_INTERVAL_MS,
            log_cleaner_max_keys: crate::storage::compaction::DEFAULT_MAX_KEYS,
            group_consumer_session_timeout_ms: crate::groups::DEFAULT_CONSUMER_SESSION_TIMEOUT_MS,
            group_consumer_heartbeat_interval_ms: u64::try_from(
                crate::groups::DEFAULT_CONSUMER_HEARTBEAT_INTERVAL_MS,
            )
            .unwrap_or(5_000),
        }
    }
}
