//! The closed set of profile keys: their TOML names, one-line meanings, and the "did you mean" help for
//! unknown keys.

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
    MaxRequestBytes,
    ConnectionsMaxIdleMs,
    RequestReadTimeoutMs,
    MaxInFlightBytesPerConnection,
    LogCleanerIntervalMs,
    LogCleanerMaxKeys,
    GroupConsumerSessionTimeoutMs,
    GroupConsumerHeartbeatIntervalMs,
}

impl From<Key> for &'static str {
    fn from(key: Key) -> &'static str {
        key.name()
    }
}

impl Key {
    /// Every key, in the order the broker prints them.
    pub const ALL: [Key; 21] = [
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
        Key::MaxRequestBytes,
        Key::ConnectionsMaxIdleMs,
        Key::RequestReadTimeoutMs,
        Key::MaxInFlightBytesPerConnection,
        Key::LogCleanerIntervalMs,
        Key::LogCleanerMaxKeys,
        Key::GroupConsumerSessionTimeoutMs,
        Key::GroupConsumerHeartbeatIntervalMs,
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
            Key::MaxRequestBytes => "max_request_bytes",
            Key::ConnectionsMaxIdleMs => "connections_max_idle_ms",
            Key::RequestReadTimeoutMs => "request_read_timeout_ms",
            Key::MaxInFlightBytesPerConnection => "max_in_flight_bytes_per_connection",
            Key::LogCleanerIntervalMs => "log_cleaner_interval_ms",
            Key::LogCleanerMaxKeys => "log_cleaner_max_keys",
            Key::GroupConsumerSessionTimeoutMs => "group_consumer_session_timeout_ms",
            Key::GroupConsumerHeartbeatIntervalMs => "group_consumer_heartbeat_interval_ms",
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

/// Levenshtein distance over bytes; key names are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
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
