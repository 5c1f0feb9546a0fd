//! The closed set of profile keys: their TOML names, one-line meanings, their Kafka equivalents (which
//! name them in a broker config file), and the "did you mean" help for unknown keys.

use serde::Serialize;

/// One profile key. The TOML name is [`Key::name`]; `tuning/profiles/default.toml` documents each in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum Key {
    ShardCores,
    BenchCores,
    PinExecutors,
    IoMemoryBytes,
    IoRingDepth,
    DmaWritesInFlightPerPartition,
    WriteBufferBytes,
    FlushPolicy,
    SegmentBytes,
    TailCacheBytesPerShard,
    SocketSendBufferBytes,
    SocketRecvBufferBytes,
    MaxConnections,
    MaxConnectionsPerIp,
    MaxConnectionsPerIpOverrides,
    MaxRequestBytes,
    ConnectionsMaxIdleMs,
    RequestReadTimeoutMs,
    ConnectionsMaxWriteStallMs,
    MaxInFlightBytesPerConnection,
    LogCleanerIntervalMs,
    LogCleanerMaxKeys,
    GroupConsumerSessionTimeoutMs,
    GroupConsumerHeartbeatIntervalMs,
    TransactionMaxTimeoutMs,
}

impl From<Key> for &'static str {
    fn from(key: Key) -> &'static str {
        key.name()
    }
}

impl Key {
    /// Every key, in the order the broker prints them.
    pub const ALL: [Key; 25] = [
        Key::ShardCores,
        Key::BenchCores,
        Key::PinExecutors,
        Key::IoMemoryBytes,
        Key::IoRingDepth,
        Key::DmaWritesInFlightPerPartition,
        Key::WriteBufferBytes,
        Key::FlushPolicy,
        Key::SegmentBytes,
        Key::TailCacheBytesPerShard,
        Key::SocketSendBufferBytes,
        Key::SocketRecvBufferBytes,
        Key::MaxConnections,
        Key::MaxConnectionsPerIp,
        Key::MaxConnectionsPerIpOverrides,
        Key::MaxRequestBytes,
        Key::ConnectionsMaxIdleMs,
        Key::RequestReadTimeoutMs,
        Key::ConnectionsMaxWriteStallMs,
        Key::MaxInFlightBytesPerConnection,
        Key::LogCleanerIntervalMs,
        Key::LogCleanerMaxKeys,
        Key::GroupConsumerSessionTimeoutMs,
        Key::GroupConsumerHeartbeatIntervalMs,
        Key::TransactionMaxTimeoutMs,
    ];

    /// The key's name in TOML and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Key::ShardCores => "shard_cores",
            Key::BenchCores => "bench_cores",
            Key::PinExecutors => "pin_executors",
            Key::IoMemoryBytes => "io_memory_bytes",
            Key::IoRingDepth => "io_ring_depth",
            Key::DmaWritesInFlightPerPartition => "dma_writes_in_flight_per_partition",
            Key::WriteBufferBytes => "write_buffer_bytes",
            Key::FlushPolicy => "flush_policy",
            Key::SegmentBytes => "segment_bytes",
            Key::TailCacheBytesPerShard => "tail_cache_bytes_per_shard",
            Key::SocketSendBufferBytes => "socket_send_buffer_bytes",
            Key::SocketRecvBufferBytes => "socket_recv_buffer_bytes",
            Key::MaxConnections => "max_connections",
            Key::MaxConnectionsPerIp => "max_connections_per_ip",
            Key::MaxConnectionsPerIpOverrides => "max_connections_per_ip_overrides",
            Key::MaxRequestBytes => "max_request_bytes",
            Key::ConnectionsMaxIdleMs => "connections_max_idle_ms",
            Key::RequestReadTimeoutMs => "request_read_timeout_ms",
            Key::ConnectionsMaxWriteStallMs => "connections_max_write_stall_ms",
            Key::MaxInFlightBytesPerConnection => "max_in_flight_bytes_per_connection",
            Key::LogCleanerIntervalMs => "log_cleaner_interval_ms",
            Key::LogCleanerMaxKeys => "log_cleaner_max_keys",
            Key::GroupConsumerSessionTimeoutMs => "group_consumer_session_timeout_ms",
            Key::GroupConsumerHeartbeatIntervalMs => "group_consumer_heartbeat_interval_ms",
            Key::TransactionMaxTimeoutMs => "transaction_max_timeout_ms",
        }
    }

    /// One line saying what the key does (default.toml has the full story).
    pub const fn doc(self) -> &'static str {
        match self {
            Key::ShardCores => "cores that run a shard (one glommio executor each); \"auto\": all usable cores on 1-2 core machines, else all but the first eighth",
            Key::BenchCores => "cores the bench client pins its threads to; \"auto\": usable cores without a shard",
            Key::PinExecutors => "pin each shard's executor to its core",
            Key::IoMemoryBytes => "glommio io memory per shard, registered on 3 rings: 3 x this x shards must fit RLIMIT_MEMLOCK; \"auto\": the largest power of two up to 8 MiB that fits",
            Key::IoRingDepth => "io_uring entries per ring (a power of two, 8-4096); bounds a shard's I/O in flight",
            Key::DmaWritesInFlightPerPartition => "concurrent DMA writes of one partition's active segment (at most io_ring_depth); `tune iotune` measures it",
            Key::WriteBufferBytes => "bytes a partition gathers before a DMA write (a multiple of 4 KiB)",
            Key::FlushPolicy => "when fdatasync runs: \"always\" (before each acknowledgement), an interval in ms, or \"never\"",
            Key::SegmentBytes => "size at which a partition's segment is sealed and the next one started",
            Key::TailCacheBytesPerShard => "recent data kept in memory per shard for consumers at the tail; 0 disables it",
            Key::SocketSendBufferBytes => "SO_SNDBUF of client sockets; 0 keeps kernel autotuning",
            Key::SocketRecvBufferBytes => "SO_RCVBUF of client sockets; 0 keeps kernel autotuning",
            Key::MaxConnections => "client connections the broker holds at once; \"auto\": the hard file descriptor limit less a quarter (at least 1024)",
            Key::MaxConnectionsPerIp => "connections one client address holds at once; \"unlimited\" or a count (0: only the overrides' addresses)",
            Key::MaxConnectionsPerIpOverrides => "exceptions to max_connections_per_ip, \"IP:COUNT,IP:COUNT\"",
            Key::MaxRequestBytes => "largest request frame accepted, refused before its body is read",
            Key::ConnectionsMaxIdleMs => "a connection with no request for this long is closed",
            Key::RequestReadTimeoutMs => "a frame's size prefix, then its body, must each arrive within this long (slow-loris cut-off)",
            Key::ConnectionsMaxWriteStallMs => "a connection whose peer accepts no byte of a pending response for this long is closed",
            Key::MaxInFlightBytesPerConnection => "request bytes read from one connection and not yet answered; at the cap the broker stops reading it",
            Key::LogCleanerIntervalMs => "least time between two compaction passes of one partition",
            Key::LogCleanerMaxKeys => "keys in the compaction offset map per pass (about 40 bytes each)",
            Key::GroupConsumerSessionTimeoutMs => "a consumer-protocol group member silent this long is removed from its group",
            Key::GroupConsumerHeartbeatIntervalMs => "heartbeat interval told to consumer-protocol group members",
            Key::TransactionMaxTimeoutMs => "longest transaction.timeout.ms a transactional producer may ask for; InitProducerId asking for more gets INVALID_TRANSACTION_TIMEOUT",
        }
    }

    /// The Kafka broker setting with the same meaning and unit, if Kafka has one. A broker config file
    /// (`ringbroker serve --config`) names the key by it: Kafka's name where Kafka has the setting.
    pub const fn kafka_name(self) -> Option<&'static str> {
        match self {
            Key::SegmentBytes => Some("log.segment.bytes"),
            Key::SocketSendBufferBytes => Some("socket.send.buffer.bytes"),
            Key::SocketRecvBufferBytes => Some("socket.receive.buffer.bytes"),
            Key::MaxConnections => Some("max.connections"),
            Key::MaxConnectionsPerIp => Some("max.connections.per.ip"),
            Key::MaxConnectionsPerIpOverrides => Some("max.connections.per.ip.overrides"),
            Key::MaxRequestBytes => Some("socket.request.max.bytes"),
            Key::ConnectionsMaxIdleMs => Some("connections.max.idle.ms"),
            Key::LogCleanerIntervalMs => Some("log.cleaner.backoff.ms"),
            Key::GroupConsumerSessionTimeoutMs => Some("group.consumer.session.timeout.ms"),
            Key::GroupConsumerHeartbeatIntervalMs => Some("group.consumer.heartbeat.interval.ms"),
            Key::TransactionMaxTimeoutMs => Some("transaction.max.timeout.ms"),
            _ => None,
        }
    }

    /// The nearest Kafka setting where the meaning differs, with how (documentation only).
    pub const fn kafka_similar(self) -> Option<&'static str> {
        match self {
            Key::FlushPolicy => Some("log.flush.interval.ms (Kafka never syncs by default)"),
            Key::LogCleanerMaxKeys => Some("log.cleaner.dedupe.buffer.size (in bytes there)"),
            Key::MaxInFlightBytesPerConnection => {
                Some("queued.max.request.bytes (broker-wide there)")
            }
            Key::ShardCores => Some("num.network.threads and num.io.threads (threads there)"),
            _ => None,
        }
    }

    /// The key's name in a broker config file: its Kafka name if it has one, else its profile name.
    pub const fn config_key(self) -> &'static str {
        match self.kafka_name() {
            Some(name) => name,
            None => self.name(),
        }
    }

    /// The key with this TOML name.
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|key| key.name() == name)
    }

    /// The fix for an unknown key: the nearest known name if one is close, else the full list.
    pub fn unknown_key_fix(name: &str) -> String {
        /// Edits beyond which a known name is no longer a plausible "did you mean".
        const SUGGESTION_DISTANCE_MAX: usize = 4;
        let nearest = Key::ALL
            .into_iter()
            .map(|key| (edit_distance(name, key.name()), key))
            .min_by_key(|(distance, _)| *distance);
        match nearest {
            Some((distance, key)) if distance <= SUGGESTION_DISTANCE_MAX => {
                format!(
                    "rename it to `{}` (did you mean that?) or remove it",
                    key.name()
                )
            }
            _ => {
                let names: Vec<&str> = Key::ALL.iter().map(|key| key.name()).collect();
                format!("remove it; known keys are {}", names.join(", "))
            }
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Levenshtein distance over bytes; key names are ASCII. Also ranks "did you mean" suggestions for
/// broker config keys.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.as_bytes().iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for key in Key::ALL {
            assert_eq!(Key::from_name(key.name()), Some(key));
        }
        assert_eq!(Key::from_name("nope"), None);
    }

    #[test]
    fn unknown_key_suggests_the_nearest() {
        assert!(Key::unknown_key_fix("shard_core").contains("`shard_cores`"));
        assert!(Key::unknown_key_fix("zzzzzzzzzzzz").contains("known keys are shard_cores"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
