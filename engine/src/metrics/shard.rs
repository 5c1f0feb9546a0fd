//! One shard's metrics: counters and histograms that only that shard's thread writes (relaxed
//! atomic loads and stores, no locked instructions: see `single_writer`), plus the snapshot of
//! partition offsets, group commits and IO stats that the shard refreshes once a second.
//!
//! The scraper reads the atomics whenever it likes and the snapshot under a mutex the shard only
//! ever `try_lock`s, so nothing a scrape does can stall a shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::histogram::LatencyHistogram;
use super::single_writer::{self, WriterCheck};
use crate::storage::LogHealth;

/// Api keys 0..API_SLOTS get their own counters and histogram (Kafka's keys are below 75 today;
/// higher keys are counted in the last slot).
pub const API_SLOTS: usize = 75;
/// Error codes 0..ERROR_CODE_SLOTS are counted per code; -1 (UNKNOWN_SERVER_ERROR) and anything
/// outside the range land in the last slot, reported as -1.
pub const ERROR_CODE_SLOTS: usize = 130;

/// A step of the produce or fetch path whose latency is measured separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Produce: reading the request body off the socket (after its size prefix arrived).
    ProduceNetworkRead,
    /// Produce: from the frame being read to the handler starting (executor queue).
    ProduceQueue,
    /// Produce: the round trip to the owning shard over the mesh (includes its append).
    ProduceHop,
    /// Produce: the log append on the owning shard (DMA write and flush policy).
    ProduceAppend,
    /// Produce: writing the response to the socket.
    ProduceReply,
    /// Fetch: from the frame being read to the handler starting.
    FetchQueue,
    /// Fetch: the round trip to the owning shard over the mesh (includes its read).
    FetchHop,
    /// Fetch: the log read on the owning shard (tail cache or file range resolution).
    FetchRead,
    /// Fetch: parked waiting for `min_bytes` (long poll).
    FetchWait,
    /// Fetch: writing the response to the socket (copies and sendfile).
    FetchReply,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::ProduceNetworkRead,
        Stage::ProduceQueue,
        Stage::ProduceHop,
        Stage::ProduceAppend,
        Stage::ProduceReply,
        Stage::FetchQueue,
        Stage::FetchHop,
        Stage::FetchRead,
        Stage::FetchWait,
        Stage::FetchReply,
    ];

    /// (api label, stage label) as exported.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Stage::ProduceNetworkRead => ("Produce", "network_read"),
            Stage::ProduceQueue => ("Produce", "queue"),
            Stage::ProduceHop => ("Produce", "hop"),
            Stage::ProduceAppend => ("Produce", "append"),
            Stage::ProduceReply => ("Produce", "reply"),
            Stage::FetchQueue => ("Fetch", "queue"),
            Stage::FetchHop => ("Fetch", "hop"),
            Stage::FetchRead => ("Fetch", "read"),
            Stage::FetchWait => ("Fetch", "wait"),
            Stage::FetchReply => ("Fetch", "reply"),
        }
    }

    /// The queue and reply stages of an api, if it has measured stages.
    pub fn queue_and_reply(api_key: i16) -> Option<(Stage, Stage)> {
        match api_key {
            0 => Some((Stage::ProduceQueue, Stage::ProduceReply)),
            1 => Some((Stage::FetchQueue, Stage::FetchReply)),
            _ => None,
        }
    }
}

/// Monotonic counters of one shard.
#[derive(Debug, Default)]
pub struct Counters {
    pub produce_bytes_in: AtomicU64,
    pub produce_records_in: AtomicU64,
    pub fetch_bytes_out: AtomicU64,
    /// Records of the batches a Fetch returned, from memory or by sendfile (the read counts a file
    /// range's records from the headers it walks; see `storage::reader::file_range`). Whole
    /// batches: records below the fetch offset in the first batch are counted too, as sent.
    pub fetch_records_out: AtomicU64,
    /// Response bytes written from memory buffers (headers, tail-cache batches).
    pub bytes_sent_copied: AtomicU64,
    /// Response bytes sent from segment files: by sendfile when the page cache holds the range,
    /// else read through io_uring and sent (`server::writer`).
    pub bytes_sent_sendfile: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    /// TLS handshakes that failed (a client without TLS, a refused certificate, too slow).
    pub tls_handshake_failures: AtomicU64,
    /// SASL exchanges refused (wrong password, unknown user or mechanism, malformed token, a
    /// request before authentication): Kafka's failed-authentication-total.
    pub sasl_authentication_failures: AtomicU64,
    /// Successful SASL re-authentications (KIP-368): Kafka's successful-reauthentication-total.
    pub sasl_reauthentications: AtomicU64,
    /// Connections closed because their SASL session ended without a re-authentication
    /// (`connections.max.reauth.ms`): Kafka's expired-connections-killed-count.
    pub sasl_expired_sessions_closed: AtomicU64,
    /// Requests (or parts of requests: a topic of a Produce) the ACL authorizer refused.
    pub authorization_denied: AtomicU64,
    /// Times a connection stopped reading its socket because its requests in flight reached
    /// `max_in_flight_bytes_per_connection` (Kafka's muted channel).
    pub connection_read_pauses: AtomicU64,
    /// Of those, pauses that ended: the difference is the connections paused right now.
    pub connection_read_pauses_ended: AtomicU64,
    /// Microseconds connections spent paused, summed over ended pauses.
    pub connection_read_paused_us: AtomicU64,
    /// Bytes this broker's followers appended from their leaders.
    pub replication_bytes_in: AtomicU64,
    /// Bytes this broker's leaders read for followers' fetches.
    pub replication_bytes_out: AtomicU64,
    /// ISR changes of partitions this broker leads: followers that left, and that joined.
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    /// Partitions this broker started leading (elections that chose it).
    pub leaderships_taken: AtomicU64,
    /// Transactions this shard's coordinator committed, aborted on request, and aborted at their
    /// timeout (or when a new producer fenced the old one).
    pub transactions_committed: AtomicU64,
    pub transactions_aborted: AtomicU64,
    pub transactions_timed_out: AtomicU64,
    /// Transactions open on this shard's coordinator right now (a gauge kept by the coordinator).
    pub transactions_ongoing: AtomicU64,
}

/// glommio `IoStats` of the shard's executor, summed over its rings since start.
#[derive(Debug, Default)]
pub struct IoCounters {
    pub file_reads: AtomicU64,
    pub file_bytes_read: AtomicU64,
    pub file_buffered_reads: AtomicU64,
    pub file_buffered_bytes_read: AtomicU64,
    pub file_writes: AtomicU64,
    pub file_bytes_written: AtomicU64,
    pub file_buffered_writes: AtomicU64,
    pub file_buffered_bytes_written: AtomicU64,
    pub files_opened: AtomicU64,
    pub files_closed: AtomicU64,
    /// File read latency quantiles (µs, io_uring submission to completion) of the last sampling
    /// interval, as f64 bits; NaN when the interval had no reads.
    pub io_latency_us_p50_bits: AtomicU64,
    pub io_latency_us_p99_bits: AtomicU64,
}

/// Offsets and size of one partition the shard owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSample {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// What read_committed consumers may read up to (the high watermark without open transactions).
    pub last_stable_offset: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
    /// Whether the log takes appends (suspended on a full disk, fenced on a write error).
    pub health: LogHealth,
    /// Set when this broker leads the partition with several replicas.
    pub replication: Option<LeaderSample>,
}

/// A replicated partition's leader's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderSample {
    pub replicas: u32,
    pub in_sync: u32,
    /// The largest distance of a follower's log end to the leader's (records).
    pub max_follower_lag: i64,
}

/// Committed offsets of one group whose coordinator lives on the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSample {
    pub group: String,
    /// (topic, partition, committed offset).
    pub offsets: Vec<(String, i32, i64)>,
}

/// What the shard publishes once a second.
#[derive(Debug, Default, Clone)]
pub struct Published {
    pub partitions: Vec<PartitionSample>,
    pub groups: Vec<GroupSample>,
}

/// Everything one shard records.
#[derive(Debug)]
pub struct ShardMetrics {
    pub shard: usize,
    pub counters: Counters,
    pub io: IoCounters,
    /// Open connections, set by the shard (a gauge).
    pub connections_open: AtomicU64,
    requests: [AtomicU64; API_SLOTS],
    errors: Box<[[AtomicU64; ERROR_CODE_SLOTS]; API_SLOTS]>,
    latency: Box<[LatencyHistogram; API_SLOTS]>,
    stages: [LatencyHistogram; Stage::ALL.len()],
    published: Mutex<Published>,
    /// Debug builds: every record comes from one thread (the adds are not atomic RMWs).
    writer: WriterCheck,
}

fn api_slot(api_key: i16) -> usize {
    usize::try_from(api_key).map_or(API_SLOTS - 1, |k| k.min(API_SLOTS - 1))
}

fn error_slot(code: i16) -> usize {
    match usize::try_from(code) {
        Ok(c) if c < ERROR_CODE_SLOTS - 1 => c,
        _ => ERROR_CODE_SLOTS - 1,
    }
}

/// The error code an error slot stands for.
pub fn slot_error_code(slot: usize) -> i16 {
    if slot == ERROR_CODE_SLOTS - 1 {
        -1
    } else {
        slot as i16
    }
}

impl ShardMetrics {
    pub fn new(shard: usize) -> ShardMetrics {
        ShardMetrics {
            shard,
            counters: Counters::default(),
            io: IoCounters::default(),
            connections_open: AtomicU64::new(0),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: Box::new(std::array::from_fn(|_| {
                std::array::from_fn(|_| AtomicU64::new(0))
            })),
            latency: Box::new(std::array::from_fn(|_| LatencyHistogram::default())),
            stages: std::array::from_fn(|_| LatencyHistogram::default()),
            published: Mutex::new(Published::default()),
            writer: WriterCheck::default(),
        }
    }

    /// Adds `n` to a counter of this shard; only the shard's thread may call it.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        single_writer::add(counter, n);
    }

    /// One request of `api_key` started.
    #[inline]
    pub fn request(&self, api_key: i16) {
        self.writer.assert_single_writer();
        single_writer::add(&self.requests[api_slot(api_key)], 1);
    }

    /// One error `code` (non-zero) in a response of `api_key` (per partition for data APIs).
    #[inline]
    pub fn error(&self, api_key: i16, code: i16) {
        debug_assert_ne!(code, 0, "zero is not an error");
        self.writer.assert_single_writer();
        single_writer::add(&self.errors[api_slot(api_key)][error_slot(code)], 1);
    }

    /// A request of `api_key` took `elapsed` from its frame being read to its response written.
    #[inline]
    pub fn request_latency(&self, api_key: i16, elapsed: Duration) {
        self.writer.assert_single_writer();
        self.latency[api_slot(api_key)].record(elapsed);
    }

    #[inline]
    pub fn stage(&self, stage: Stage, elapsed: Duration) {
        self.writer.assert_single_writer();
        self.stages[stage as usize].record(elapsed);
    }

    pub fn requests_of(&self, slot: usize) -> u64 {
        self.requests[slot].load(Ordering::Relaxed)
    }

    pub fn errors_of(&self, slot: usize, error_slot: usize) -> u64 {
        self.errors[slot][error_slot].load(Ordering::Relaxed)
    }

    pub fn latency_of(&self, slot: usize) -> &LatencyHistogram {
        &self.latency[slot]
    }

    pub fn stage_histogram(&self, stage: Stage) -> &LatencyHistogram {
        &self.stages[stage as usize]
    }

    /// Replaces the published snapshot unless a scrape is reading it right now (then the next
    /// refresh publishes): the shard never waits for the scraper.
    pub fn publish(&self, snapshot: Published) -> bool {
        match self.published.try_lock() {
            Ok(mut published) => {
                *published = snapshot;
                true
            }
            Err(_) => false,
        }
    }

    /// A copy of the last published snapshot (scraper side).
    pub fn published(&self) -> Published {
        match self.published.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_and_error_slots_clamp() {
        assert_eq!(api_slot(0), 0);
        assert_eq!(api_slot(-3), API_SLOTS - 1);
        assert_eq!(api_slot(1000), API_SLOTS - 1);
        assert_eq!(error_slot(3), 3);
        assert_eq!(slot_error_code(error_slot(-1)), -1);
        assert_eq!(slot_error_code(error_slot(999)), -1);
    }

    #[test]
    fn publish_skips_while_a_reader_holds_the_snapshot() {
        let m = ShardMetrics::new(0);
        let guard = m.published.lock().unwrap();
        assert!(!m.publish(Published::default()));
        drop(guard);
        let sample = Published {
            partitions: vec![PartitionSample {
                topic: "t".into(),
                partition: 0,
                log_start_offset: 0,
                high_watermark: 5,
                last_stable_offset: 5,
                log_end_offset: 5,
                size_bytes: 100,
                health: LogHealth::Online,
                replication: None,
            }],
            groups: Vec::new(),
        };
        assert!(m.publish(sample.clone()));
        assert_eq!(m.published().partitions, sample.partitions);
    }
}
