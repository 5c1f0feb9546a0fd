//! The control-plane calls a run needs: find the topic's partitions and leaders (Metadata), create
//! the topic (CreateTopics), and read earliest/latest offsets (ListOffsets).

use std::collections::{BTreeMap, HashMap};
use std::thread;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use crate::client::connection::Connection;
use crate::client::versions::{CREATE_TOPICS, LIST_OFFSETS, METADATA};
use crate::error::{BenchError, Result};

/// Kafka's TOPIC_ALREADY_EXISTS: creating an existing topic is fine for a benchmark.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's LEADER_NOT_AVAILABLE: the topic exists but its leaders are still being elected.
const LEADER_NOT_AVAILABLE: i16 = 5;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka error code: the broker does not (yet) lead the partition. Right after CreateTopics, Kafka's
/// Metadata can name a leader whose broker side has not applied the partition: ListOffsets is retried.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// Metadata v4 added `allow_auto_topic_creation`; encoding `false` into an older version fails.
const FIRST_METADATA_VERSION_WITH_AUTO_CREATE_FLAG: i16 = 4;
/// How many times we ask Metadata again while leaders are being elected.
pub const METADATA_RETRIES: u32 = 50;
/// Pause between those attempts.
pub const METADATA_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// ListOffsets timestamp meaning "the log end offset".
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp meaning "the log start offset".
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// A partition and the broker leading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLeader {
    /// Partition index.
    pub partition: i32,
    /// Node id of the leader.
    pub leader: i32,
}

/// Where a topic's partitions live.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicLayout {
    /// Topic name.
    pub topic: String,
    /// Partitions in index order.
    pub partitions: Vec<PartitionLeader>,
    /// node id → "host:port".
    pub brokers: BTreeMap<i32, String>,
}

impl TopicLayout {
    /// The address of a node.
    pub fn broker_addr(&self, node: i32) -> Result<&str> {
        self.brokers
            .get(&node)
            .map(String::as_str)
            .ok_or_else(|| BenchError::Metadata(format!("leader {node} is not in the broker list")))
    }
}

/// Creates `topic` unless it exists.
pub fn create_topic(
    conn: &mut Connection,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    timeout_ms: i32,
) -> Result<bool> {
    let version = conn.versions().pick(CREATE_TOPICS)?;
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)])
        .with_timeout_ms(timeout_ms);
    let response = conn.call(&request, version)?;
    let Some(result) = response.topics.first() else {
        return Err(BenchError::Protocol(format!(
            "CreateTopics answered nothing for {topic}"
        )));
    };
    match result.error_code {
        0 => Ok(true),
        TOPIC_ALREADY_EXISTS => Ok(false),
        code => {
            let detail = result
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            Err(BenchError::broker(
                code,
                format!("CreateTopics {topic}: {detail}"),
            ))
        }
    }
}

/// Reads the topic's layout, waiting while leaders are not yet elected. With `just_created`, an
/// unknown topic is waited for too: Kafka (KRaft) answers CreateTopics once the controller has the
/// topic, and its broker side may answer Metadata with UNKNOWN_TOPIC_OR_PARTITION a moment longer
/// (seen with `log.flush.interval.messages=1`, where the metadata log syncs every record).
pub fn topic_layout(
    conn: &mut Connection,
    topic: &str,
    bootstrap: &str,
    just_created: bool,
) -> Result<TopicLayout> {
    let version = conn.versions().pick(METADATA)?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        // The field exists from v4 on; older versions always auto-create (as the broker is configured).
        .with_allow_auto_topic_creation(version < FIRST_METADATA_VERSION_WITH_AUTO_CREATE_FLAG);
    let mut last_error = String::new();
    for _ in 0..METADATA_RETRIES {
        let response = conn.call(&request, version)?;
        match layout_from_metadata(&response, topic, bootstrap, just_created) {
            Ok(layout) => return Ok(layout),
            Err(LayoutError::Retry(why)) => last_error = why,
            Err(LayoutError::Fatal(e)) => return Err(e),
        }
        thread::sleep(METADATA_RETRY_PAUSE);
    }
    Err(BenchError::Metadata(format!("{topic}: {last_error}")))
}

enum LayoutError {
    Retry(String),
    Fatal(BenchError),
}

fn layout_from_metadata(
    response: &MetadataResponse,
    topic: &str,
    bootstrap: &str,
    just_created: bool,
) -> std::result::Result<TopicLayout, LayoutError> {
    let bootstrap_host = bootstrap
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(bootstrap);
    let brokers = response
        .brokers
        .iter()
        .map(|b| {
            // A broker that advertises a wildcard address is reached through the bootstrap host.
            let host = match b.host.as_str() {
                "" | "0.0.0.0" | "::" => bootstrap_host,
                h => h,
            };
            (b.node_id.0, format!("{host}:{}", b.port))
        })
        .collect::<BTreeMap<_, _>>();
    let Some(t) = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
    else {
        return Err(LayoutError::Fatal(BenchError::Metadata(format!(
            "topic {topic} missing from Metadata; create it with --partitions N"
        ))));
    };
    match t.error_code {
        0 => {}
        LEADER_NOT_AVAILABLE => return Err(LayoutError::Retry("leader not available".into())),
        UNKNOWN_TOPIC_OR_PARTITION if just_created => {
            return Err(LayoutError::Retry(
                "created, but not yet in the broker's metadata".into(),
            ))
        }
        UNKNOWN_TOPIC_OR_PARTITION => {
            return Err(LayoutError::Fatal(BenchError::Metadata(format!(
                "topic {topic} does not exist; create it with --partitions N"
            ))))
        }
        code => {
            return Err(LayoutError::Fatal(BenchError::broker(
                code,
                format!("Metadata {topic}"),
            )))
        }
    }
    let mut partitions = Vec::with_capacity(t.partitions.len());
    for p in &t.partitions {
        if p.error_code != 0 || p.leader_id.0 < 0 {
            return Err(LayoutError::Retry(format!(
                "partition {} has no leader (error {})",
                p.partition_index, p.error_code
            )));
        }
        partitions.push(PartitionLeader {
            partition: p.partition_index,
            leader: p.leader_id.0,
        });
    }
    if partitions.is_empty() {
        return Err(LayoutError::Retry("topic has no partitions yet".into()));
    }
    partitions.sort_by_key(|p| p.partition);
    Ok(TopicLayout {
        topic: topic.to_string(),
        partitions,
        brokers,
    })
}

/// ListOffsets for every partition of the layout, asking each leader for its partitions.
pub fn list_offsets(
    layout: &TopicLayout,
    timestamp: i64,
    read_timeout: Duration,
) -> Result<HashMap<i32, i64>> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &layout.partitions {
        by_leader.entry(p.leader).or_default().push(p.partition);
    }
    let mut offsets = HashMap::new();
    for (leader, partitions) in by_leader {
        let mut conn = Connection::connect(layout.broker_addr(leader)?, read_timeout)?;
        let version = conn.versions().pick(LIST_OFFSETS)?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(&layout.topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let mut attempts = 0;
        'ask: loop {
            attempts += 1;
            let response = conn.call(&request, version)?;
            for t in &response.topics {
                for p in &t.partitions {
                    let retriable = matches!(
                        p.error_code,
                        NOT_LEADER_OR_FOLLOWER | LEADER_NOT_AVAILABLE | UNKNOWN_TOPIC_OR_PARTITION
                    );
                    if retriable && attempts < METADATA_RETRIES {
                        thread::sleep(METADATA_RETRY_PAUSE);
                        continue 'ask;
                    }
                    if p.error_code != 0 {
                        return Err(BenchError::broker(
                            p.error_code,
                            format!("ListOffsets {}-{}", layout.topic, p.partition_index),
                        ));
                    }
                    offsets.insert(p.partition_index, p.offset);
                }
            }
            break;
        }
    }
    for p in &layout.partitions {
        if !offsets.contains_key(&p.partition) {
            return Err(BenchError::Metadata(format!(
                "ListOffsets omitted partition {}",
                p.partition
            )));
        }
    }
    Ok(offsets)
}

/// A topic name for kafka-protocol.
pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    fn metadata(leader: i32, error: i16) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("0.0.0.0"))
                .with_port(9093)])
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(topic_name("t")))
                .with_error_code(error)
                .with_partitions(vec![
                    MetadataResponsePartition::default()
                        .with_partition_index(1)
                        .with_leader_id(BrokerId(leader)),
                    MetadataResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(1)),
                ])])
    }

    #[test]
    fn layout_sorts_partitions_and_rewrites_wildcard_hosts() {
        let Ok(layout) = layout_from_metadata(&metadata(1, 0), "t", "127.0.0.1:9092", false) else {
            panic!("layout expected");
        };
        assert_eq!(layout.partitions[0].partition, 0);
        assert_eq!(layout.broker_addr(1).expect("known"), "127.0.0.1:9093");
    }

    #[test]
    fn metadata_requests_encode_for_every_version_we_speak() {
        use kafka_protocol::protocol::Encodable;
        for version in crate::client::versions::METADATA.min..=crate::client::versions::METADATA.max
        {
            let request = MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name("t")))
                ]))
                .with_allow_auto_topic_creation(
                    version < FIRST_METADATA_VERSION_WITH_AUTO_CREATE_FLAG,
                );
            let mut buf = bytes::BytesMut::new();
            request.encode(&mut buf, version).expect("encodes");
        }
    }

    #[test]
    fn admin_requests_encode_for_every_version_we_speak() {
        use crate::client::versions::{CREATE_TOPICS, LIST_OFFSETS};
        use kafka_protocol::protocol::Encodable;
        for version in LIST_OFFSETS.min..=LIST_OFFSETS.max {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(LATEST_TIMESTAMP)])]);
            request
                .encode(&mut bytes::BytesMut::new(), version)
                .expect("ListOffsets encodes");
        }
        for version in CREATE_TOPICS.min..=CREATE_TOPICS.max {
            let request = CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic_name("t"))
                    .with_num_partitions(2)
                    .with_replication_factor(1)])
                .with_timeout_ms(1000);
            request
                .encode(&mut bytes::BytesMut::new(), version)
                .expect("CreateTopics encodes");
        }
    }

    #[test]
    fn missing_leader_is_retried() {
        assert!(matches!(
            layout_from_metadata(&metadata(-1, 0), "t", "h:1", false),
            Err(LayoutError::Retry(_))
        ));
        assert!(matches!(
            layout_from_metadata(&metadata(1, 3), "t", "h:1", false),
            Err(LayoutError::Fatal(_))
        ));
    }

    #[test]
    fn a_just_created_topic_is_waited_for() {
        assert!(matches!(
            layout_from_metadata(&metadata(1, UNKNOWN_TOPIC_OR_PARTITION), "t", "h:1", true),
            Err(LayoutError::Retry(_))
        ));
    }
}
