//! Fetch requests for a consumer's partitions, and the per-partition results of a response.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};

use crate::client::admin::topic_name;

/// Fetch limits of one consumer.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    /// How long the broker may hold the request waiting for `min_bytes`.
    pub max_wait_ms: i32,
    /// Bytes the broker should gather before answering.
    pub min_bytes: i32,
    /// Cap of the whole response.
    pub max_bytes: i32,
    /// Cap per partition.
    pub partition_max_bytes: i32,
}

/// Builds a Fetch request (read_uncommitted, no fetch session) for `(partition, offset)` pairs.
pub fn request(topic: &str, positions: &[(i32, i64)], limits: FetchLimits) -> FetchRequest {
    request_with_isolation(topic, positions, limits, 0)
}

/// Builds a Fetch request with Kafka's isolation level (0 read_uncommitted, 1 read_committed).
pub fn request_with_isolation(
    topic: &str,
    positions: &[(i32, i64)],
    limits: FetchLimits,
    isolation_level: i8,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(limits.max_wait_ms)
        .with_min_bytes(limits.min_bytes)
        .with_max_bytes(limits.max_bytes)
        .with_isolation_level(isolation_level)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                positions
                    .iter()
                    .map(|&(partition, offset)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(limits.partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// One partition's answer.
#[derive(Debug, Clone)]
pub struct PartitionResult {
    /// Partition index.
    pub partition: i32,
    /// Kafka error code.
    pub error_code: i16,
    /// The record batches (shares the response buffer).
    pub records: Bytes,
}

/// Flattens a response into its partition results.
pub fn results(response: FetchResponse) -> Result<Vec<PartitionResult>, i16> {
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    Ok(response
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .map(|p| PartitionResult {
            partition: p.partition_index,
            error_code: p.error_code,
            records: p.records.unwrap_or_default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_for_every_version_we_speak() {
        use kafka_protocol::protocol::Encodable;
        let limits = FetchLimits {
            max_wait_ms: 100,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 16,
        };
        let api = crate::client::versions::FETCH;
        for version in api.min..=api.max {
            let mut buf = bytes::BytesMut::new();
            request("t", &[(0, 5)], limits)
                .encode(&mut buf, version)
                .expect("encodes");
        }
    }

    #[test]
    fn request_carries_positions_and_limits() {
        let limits = FetchLimits {
            max_wait_ms: 100,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1 << 16,
        };
        let r = request("t", &[(0, 5), (2, 9)], limits);
        assert_eq!(r.max_wait_ms, 100);
        let parts = &r.topics[0].partitions;
        assert_eq!((parts[1].partition, parts[1].fetch_offset), (2, 9));
        assert_eq!(parts[0].partition_max_bytes, 1 << 16);
    }
}
