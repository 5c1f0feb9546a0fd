//! Settings of the transaction coordinator, with Kafka's broker defaults and names.

/// Kafka's internal topic holding the coordinators' state (`<data>/__transaction_state-<n>/`).
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's `transaction.state.log.num.partitions` default: a transactional id's state lives in
/// partition `hash(id) % 50`, like Kafka places it.
pub const TRANSACTION_STATE_PARTITIONS: i32 = 50;
/// Kafka's `transaction.max.timeout.ms` default (15 minutes): InitProducerId asking for a longer
/// `transaction.timeout.ms` gets INVALID_TRANSACTION_TIMEOUT.
pub const DEFAULT_TRANSACTION_MAX_TIMEOUT_MS: i32 = 900_000;
/// Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms` default: how often the
/// coordinator looks for transactions past their timeout and aborts them.
pub const DEFAULT_ABORT_CHECK_INTERVAL_MS: u64 = 10_000;
/// Partitions one transaction may span. Kafka has no limit; we bound it because each one costs a
/// marker write at the end and memory in the coordinator, and no real transaction comes close.
pub const TRANSACTION_PARTITIONS_MAX: usize = 100_000;
/// Largest segment of `__transaction_state` logs: its records are small and few.
pub const TRANSACTION_STATE_SEGMENT_BYTES: u64 = 8 << 20;
/// How long a write to a replicated `__transaction_state` partition waits for its in-sync
/// replicas before the request fails with NOT_COORDINATOR (the client finds the coordinator and
/// retries). Kafka waits up to `request.timeout.ms` (30 s); the coordinator's lock is held
/// meanwhile, so shorter, like `offsets.commit.timeout.ms`.
pub const TRANSACTION_STATE_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest tail cache per `__transaction_state` partition (only replayed at start-up).
pub const TRANSACTION_STATE_TAIL_CACHE_BYTES: usize = 64 << 10;

/// Configuration of one shard's transaction coordinator.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// Longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// How often timed-out transactions are looked for.
    pub abort_check_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: DEFAULT_TRANSACTION_MAX_TIMEOUT_MS,
            abort_check_interval_ms: DEFAULT_ABORT_CHECK_INTERVAL_MS,
        }
    }
}
