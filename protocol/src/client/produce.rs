//! Produce: sends record batches to partition leaders, one request per leader.

use super::error::{check_code, ClientError, NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION};
use super::Client;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Where a partition's records landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceOutcome {
    /// Offset of the first record; -1 with acks=0 (no answer).
    pub base_offset: i64,
    /// Broker append time on LogAppendTime topics, else -1.
    pub log_append_time_ms: i64,
    /// The partition's log start offset (v5+), else -1.
    pub log_start_offset: i64,
}

/// Per-partition results of one `produce` call, by partition.
pub type ProduceResults = BTreeMap<i32, Result<ProduceOutcome, ClientError>>;

impl Client {
    /// Sends `batches` (partition, one or more v2 batches) of `topic` with `acks` (0, 1 or -1).
    /// Batches for the same partition are concatenated in order. The outer error is a failed request;
    /// Kafka errors per partition are in the map (NOT_LEADER_OR_FOLLOWER also drops cached metadata so
    /// a retry re-routes).
    pub fn produce(
        &mut self,
        topic: &str,
        batches: Vec<(i32, Bytes)>,
        acks: i16,
        timeout_ms: i32,
    ) -> Result<ProduceResults, ClientError> {
        let mut merged: BTreeMap<i32, BytesMut> = BTreeMap::new();
        for (partition, batch) in batches {
            merged
                .entry(partition)
                .or_default()
                .extend_from_slice(&batch);
        }
        let by_leader = self.group_by_leader(topic, merged.into_iter().collect())?;
        let mut results = ProduceResults::new();
        for (leader, partitions) in by_leader {
            let sent: Vec<i32> = partitions.iter().map(|(partition, _)| *partition).collect();
            let request = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(timeout_ms)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partition_data(
                        partitions
                            .into_iter()
                            .map(|(partition, records)| {
                                PartitionProduceData::default()
                                    .with_index(partition)
                                    .with_records(Some(records.freeze()))
                            })
                            .collect(),
                    )]);
            let connection = self.broker(leader)?;
            if acks == 0 {
                let version = connection.version_for::<ProduceRequest>()?;
                connection.send_without_response(&request, version)?;
                for partition in sent {
                    results.insert(
                        partition,
                        Ok(ProduceOutcome {
                            base_offset: -1,
                            log_append_time_ms: -1,
                            log_start_offset: -1,
                        }),
                    );
                }
                continue;
            }
            let (response, _) = connection.send(&request)?;
            for topic_response in response.responses {
                for partition in topic_response.partition_responses {
                    let code = partition.error_code;
                    if code == NOT_LEADER_OR_FOLLOWER || code == UNKNOWN_TOPIC_OR_PARTITION {
                        self.invalidate_topic(topic);
                    }
                    let outcome = check_code(
                        code,
                        || format!("Produce to {topic}-{}", partition.index),
                        partition.error_message.as_deref(),
                    )
                    .map(|()| ProduceOutcome {
                        base_offset: partition.base_offset,
                        log_append_time_ms: partition.log_append_time_ms,
                        log_start_offset: partition.log_start_offset,
                    });
                    results.insert(partition.index, outcome);
                }
            }
            for partition in sent {
                results.entry(partition).or_insert_with(|| {
                    Err(ClientError::Protocol {
                        addr: format!("broker {leader}"),
                        reason: format!("Produce answer has no result for {topic}-{partition}"),
                    })
                });
            }
        }
        Ok(results)
    }
}
