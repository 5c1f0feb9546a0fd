//! Tunables of the group coordinator, with Kafka's broker defaults.

use std::time::Duration;

/// Kafka's `group.min.session.timeout.ms` default.
pub const DEFAULT_SESSION_TIMEOUT_MIN_MS: i32 = 6_000;
/// Kafka's `group.max.session.timeout.ms` default (30 minutes).
pub const DEFAULT_SESSION_TIMEOUT_MAX_MS: i32 = 1_800_000;
/// Kafka's `group.initial.rebalance.delay.ms` default: gives a starting fleet of consumers time to join
/// before the first generation forms, so it is not rebalanced once per arriving member.
pub const DEFAULT_INITIAL_REBALANCE_DELAY_MS: u64 = 3_000;
/// Kafka's `offsets.retention.minutes` default (7 days): offsets of an empty group expire after this.
pub const DEFAULT_OFFSETS_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `offsets.retention.check.interval.ms` default (10 minutes).
pub const DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS: u64 = 600_000;
/// Kafka's `offset.metadata.max.bytes` default: longer commit metadata gets OFFSET_METADATA_TOO_LARGE.
pub const DEFAULT_OFFSET_METADATA_MAX_BYTES: usize = 4_096;
/// Members (joined plus pending) one group may hold. Kafka's `group.max.size` default is unbounded; we
/// bound it because every member costs memory and a parked request, and no real group comes close.
pub const DEFAULT_GROUP_MEMBERS_MAX: usize = 10_000;

/// Kafka's `group.consumer.session.timeout.ms` default: a consumer-protocol member is removed when no
/// heartbeat arrives for this long (the broker decides it, not the client).
pub const DEFAULT_CONSUMER_SESSION_TIMEOUT_MS: u64 = 45_000;
/// Kafka's `group.consumer.heartbeat.interval.ms` default: how often consumer-protocol members heartbeat
/// (told in every answer). Each step of a reconciliation waits for a heartbeat, so it bounds how fast
/// partitions move.
pub const DEFAULT_CONSUMER_HEARTBEAT_INTERVAL_MS: i32 = 5_000;
/// How old the resolution of a subscribed regular expression may get before a heartbeat matches it
/// against the topics again: a new matching topic joins the subscription within about this long (Kafka
/// refreshes regexes in the background at most this often too).
pub const DEFAULT_CONSUMER_REGEX_REFRESH_INTERVAL_MS: u64 = 10_000;

/// Configuration of one shard's [`super::GroupCoordinator`].
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for (INVALID_SESSION_TIMEOUT below it).
    pub session_timeout_min_ms: i32,
    /// Largest session timeout a member may ask for (INVALID_SESSION_TIMEOUT above it).
    pub session_timeout_max_ms: i32,
    /// Delay before the first generation of a new (empty) group forms; 0 in tests.
    pub initial_rebalance_delay_ms: u64,
    /// Offsets of an empty group older than this are deleted (tombstoned).
    pub offsets_retention_ms: i64,
    /// How often the retention sweep runs.
    pub offsets_retention_check_interval_ms: u64,
    /// Longest commit metadata string accepted, in bytes.
    pub offset_metadata_max_bytes: usize,
    /// Most members (joined plus pending) per group (GROUP_MAX_SIZE_REACHED beyond).
    pub group_members_max: usize,
    /// Session timeout of consumer-protocol members.
    pub consumer_session_timeout_ms: u64,
    /// Heartbeat interval told to consumer-protocol members.
    pub consumer_heartbeat_interval_ms: i32,
    /// Longest a regex subscription's resolution is reused.
    pub consumer_regex_refresh_interval_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_min_ms: DEFAULT_SESSION_TIMEOUT_MIN_MS,
            session_timeout_max_ms: DEFAULT_SESSION_TIMEOUT_MAX_MS,
            initial_rebalance_delay_ms: DEFAULT_INITIAL_REBALANCE_DELAY_MS,
            offsets_retention_ms: DEFAULT_OFFSETS_RETENTION_MS,
            offsets_retention_check_interval_ms: DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS,
            offset_metadata_max_bytes: DEFAULT_OFFSET_METADATA_MAX_BYTES,
            group_members_max: DEFAULT_GROUP_MEMBERS_MAX,
            consumer_session_timeout_ms: DEFAULT_CONSUMER_SESSION_TIMEOUT_MS,
            consumer_heartbeat_interval_ms: DEFAULT_CONSUMER_HEARTBEAT_INTERVAL_MS,
            consumer_regex_refresh_interval_ms: DEFAULT_CONSUMER_REGEX_REFRESH_INTERVAL_MS,
        }
    }
}

impl GroupConfig {
    pub(crate) fn initial_rebalance_delay(&self) -> Duration {
        Duration::from_millis(self.initial_rebalance_delay_ms)
    }

    pub(crate) fn consumer_session_timeout(&self) -> Duration {
        Duration::from_millis(self.consumer_session_timeout_ms)
    }

    pub(crate) fn consumer_regex_refresh_interval(&self) -> Duration {
        Duration::from_millis(self.consumer_regex_refresh_interval_ms)
    }

    pub(crate) fn retention_check_interval(&self) -> Duration {
        // A zero interval would spin the sweep task; one millisecond is the floor.
        Duration::from_millis(self.offsets_retention_check_interval_ms.max(1))
    }
}
