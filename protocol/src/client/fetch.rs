//! Fetch: reads record batches from partition leaders, one request per leader.

use super::error::{ClientError, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION};
use super::Client;
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

/// Java consumer default `fetch.max.bytes`.
pub const DEFAULT_FETCH_MAX_BYTES: i32 = 52_428_800;
/// Java consumer default `max.partition.fetch.bytes`.
pub const DEFAULT_PARTITION_MAX_BYTES: i32 = 1_048_576;
/// Java consumer default `fetch.max.wait.ms`.
pub const DEFAULT_FETCH_MAX_WAIT_MS: i32 = 500;
/// "No fetch session": a full fetch that creates no session on the broker.
const NO_SESSION_EPOCH: i32 = -1;

/// Fetch request knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Longest the broker may wait for `min_bytes`.
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// 0 = read_uncommitted, 1 = read_committed.
    pub isolation_level: i8,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait_ms: DEFAULT_FETCH_MAX_WAIT_MS,
            min_bytes: 1,
            max_bytes: DEFAULT_FETCH_MAX_BYTES,
            partition_max_bytes: DEFAULT_PARTITION_MAX_BYTES,
            isolation_level: 0,
        }
    }
}

/// One partition of a Fetch answer. `records` holds raw batches: decode with
/// `records::decode_records` and drop records below the offset asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    /// Kafka error code (0 = none), e.g. OFFSET_OUT_OF_RANGE.
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
}

impl Client {
    /// Fetches `topic` from each (partition, offset) position. One request per leader, sent one after
    /// another (each may wait up to `max_wait_ms`). Partition errors come back in `error_code`.
    pub fn fetch(
        &mut self,
        topic: &str,
        positions: &[(i32, i64)],
        options: &FetchOptions,
    ) -> Result<Vec<FetchedPartition>, ClientError> {
        let by_leader = self.group_by_leader(topic, positions.to_vec())?;
        let mut fetched = Vec::with_capacity(positions.len());
        for (leader, partitions) in by_leader {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(options.max_wait_ms)
                .with_min_bytes(options.min_bytes)
                .with_max_bytes(options.max_bytes)
                .with_isolation_level(options.isolation_level)
                .with_session_id(0)
                .with_session_epoch(NO_SESSION_EPOCH)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(partition, offset)| {
                                FetchPartition::default()
                                    .with_partition(*partition)
                                    .with_current_leader_epoch(-1)
                                    .with_fetch_offset(*offset)
                                    .with_last_fetched_epoch(-1)
                                    .with_log_start_offset(-1)
                                    .with_partition_max_bytes(options.partition_max_bytes)
                            })
                            .collect(),
                    )]);
            let (response, _) = self.send_to(leader, &request)?;
            super::error::check_code(response.error_code, || format!("Fetch from {topic}"), None)?;
            for topic_response in response.responses {
                for partition in topic_response.partitions {
                    let code = partition.error_code;
                    if code == NOT_LEADER_OR_FOLLOWER || code == UNKNOWN_TOPIC_OR_PARTITION {
                        self.invalidate_topic(topic);
                    }
                    fetched.push(FetchedPartition {
                        partition: partition.partition_index,
                        error_code: code,
                        high_watermark: partition.high_watermark,
                        last_stable_offset: partition.last_stable_offset,
                        log_start_offset: partition.log_start_offset,
                        records: partition.records.unwrap_or_default(),
                    });
                }
            }
        }
        Ok(fetched)
    }
}
