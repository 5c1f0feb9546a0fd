//! The "consumer" embedded protocol (subscription and assignment bytes inside JoinGroup/SyncGroup) and
//! the range assignor the group leader runs, exactly as Kafka's `RangeAssignor`: per topic, members
//! subscribed to it sorted by member id, each gets a contiguous range, the first `partitions % members`
//! get one extra.

use super::ClientError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;

/// JoinGroup protocol type of consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// Name of the range assignor, as the Java client registers it.
pub const RANGE_ASSIGNOR: &str = "range";
/// Version of subscription/assignment bytes we write: v0 is readable by every client.
const WRITE_VERSION: i16 = 0;
/// Highest version we decode; newer versions only append fields, so decoding them as this is safe.
const READ_VERSION_MAX: i16 = 3;

/// A member's assignment: topic → partitions.
pub type Assignment = BTreeMap<String, Vec<i32>>;

fn protocol_error(reason: String) -> ClientError {
    ClientError::Protocol {
        addr: "group member".into(),
        reason,
    }
}

/// Subscription bytes for JoinGroup metadata.
pub fn encode_subscription(topics: &[String]) -> Result<Bytes, ClientError> {
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|topic| StrBytes::from_string(topic.clone()))
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(WRITE_VERSION);
    subscription
        .encode(&mut out, WRITE_VERSION)
        .map_err(|error| protocol_error(format!("cannot encode subscription: {error}")))?;
    Ok(out.freeze())
}

/// Topics of a member's subscription bytes.
pub fn decode_subscription(metadata: &Bytes) -> Result<Vec<String>, ClientError> {
    let (version, mut body) = split_version(metadata)?;
    let subscription = ConsumerProtocolSubscription::decode(&mut body, version)
        .map_err(|error| protocol_error(format!("cannot decode subscription: {error}")))?;
    Ok(subscription
        .topics
        .iter()
        .map(|topic| topic.to_string())
        .collect())
}

/// Assignment bytes for SyncGroup.
pub fn encode_assignment(assignment: &Assignment) -> Result<Bytes, ClientError> {
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assignment
            .iter()
            .map(|(topic, partitions)| {
                AssignedTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(partitions.clone())
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(WRITE_VERSION);
    message
        .encode(&mut out, WRITE_VERSION)
        .map_err(|error| protocol_error(format!("cannot encode assignment: {error}")))?;
    Ok(out.freeze())
}

/// A member's assignment from SyncGroup/DescribeGroups bytes (empty bytes: nothing assigned).
pub fn decode_assignment(bytes: &Bytes) -> Result<Assignment, ClientError> {
    if bytes.is_empty() {
        return Ok(Assignment::new());
    }
    let (version, mut body) = split_version(bytes)?;
    let message = ConsumerProtocolAssignment::decode(&mut body, version)
        .map_err(|error| protocol_error(format!("cannot decode assignment: {error}")))?;
    let mut assignment = Assignment::new();
    for topic in message.assigned_partitions {
        assignment
            .entry(topic.topic.0.to_string())
            .or_default()
            .extend(topic.partitions);
    }
    Ok(assignment)
}

fn split_version(bytes: &Bytes) -> Result<(i16, Bytes), ClientError> {
    if bytes.len() < 2 {
        return Err(protocol_error(
            "consumer protocol bytes shorter than the version".into(),
        ));
    }
    let mut body = bytes.clone();
    let version = body.get_i16();
    if version < 0 {
        return Err(protocol_error(format!(
            "consumer protocol version {version}"
        )));
    }
    Ok((version.min(READ_VERSION_MAX), body))
}

/// Kafka's RangeAssignor. `members` are (member id, subscribed topics); `partition_counts` the number
/// of partitions per topic (topics missing there are skipped). Every member gets an entry.
pub fn range_assign(
    members: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(member, _)| (member.clone(), Assignment::new()))
        .collect();
    for (topic, count) in partition_counts {
        let mut subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        if subscribers.is_empty() || *count <= 0 {
            continue;
        }
        subscribers.sort();
        subscribers.dedup();
        let member_count = subscribers.len() as i32;
        let per_member = count / member_count;
        let extra = count % member_count;
        for (index, member) in subscribers.into_iter().enumerate() {
            let index = index as i32;
            let start = per_member * index + index.min(extra);
            let length = per_member + i32::from(index < extra);
            if length > 0 {
                if let Some(assignment) = result.get_mut(member) {
                    assignment.insert(topic.clone(), (start..start + length).collect());
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(member, topics)| {
                (
                    member.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn range_assignor_matches_kafkas_range_assignor() {
        // RangeAssignorTest.testTwoConsumersTwoTopicsSixPartitions: 3 partitions each, 2 consumers.
        let counts = BTreeMap::from([("t1".to_string(), 3), ("t2".to_string(), 3)]);
        let result = range_assign(
            &members(&[("c2", &["t1", "t2"]), ("c1", &["t1", "t2"])]),
            &counts,
        );
        assert_eq!(result["c1"]["t1"], [0, 1]);
        assert_eq!(result["c1"]["t2"], [0, 1]);
        assert_eq!(result["c2"]["t1"], [2]);
        assert_eq!(result["c2"]["t2"], [2]);
        // More consumers than partitions: the last ones get nothing.
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let result = range_assign(
            &members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
            &counts,
        );
        assert_eq!(result["a"]["t"], [0]);
        assert_eq!(result["b"]["t"], [1]);
        assert!(result["c"].is_empty());
        // Only subscribers of a topic share it.
        let counts = BTreeMap::from([("x".to_string(), 4), ("y".to_string(), 1)]);
        let result = range_assign(&members(&[("a", &["x"]), ("b", &["x", "y"])]), &counts);
        assert_eq!(result["a"]["x"], [0, 1]);
        assert_eq!(result["b"]["x"], [2, 3]);
        assert_eq!(result["b"]["y"], [0]);
        assert!(!result["a"].contains_key("y"));
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics = vec!["orders".to_string(), "payments".to_string()];
        let bytes = encode_subscription(&topics).unwrap();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(decode_subscription(&bytes).unwrap(), topics);
        let assignment = Assignment::from([
            ("orders".to_string(), vec![0, 2]),
            ("payments".to_string(), vec![1]),
        ]);
        let bytes = encode_assignment(&assignment).unwrap();
        assert_eq!(decode_assignment(&bytes).unwrap(), assignment);
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn java_v1_subscription_decodes() {
        // A Java consumer's v1 subscription: version 1, topics ["t"], null user data, no owned partitions.
        let bytes = Bytes::from_static(&[
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        assert_eq!(decode_subscription(&bytes).unwrap(), ["t"]);
    }
}
