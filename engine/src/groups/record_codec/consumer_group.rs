//! Kafka's `__consumer_offsets` records of consumer-protocol groups (KIP-848). A key is its `i16` record
//! type then the key fields at key version 0 (not flexible): 3 `ConsumerGroupMetadataKey` (group),
//! 5 `ConsumerGroupMemberMetadataKey` (group, member), 6 `ConsumerGroupTargetAssignmentMetadataKey`
//! (group), 7 `ConsumerGroupTargetAssignmentMemberKey` (group, member), 8
//! `ConsumerGroupCurrentMemberAssignmentKey` (group, member), 16 `ConsumerGroupRegularExpressionKey`
//! (group, regex). A value is its `i16` version (0) then the fields of the flexible version 0, as Kafka 4.4
//! writes them; tagged fields we do not use (a classic member's protocols, assignment epochs per
//! partition) are skipped when read and never written. Type 4 (`ConsumerGroupPartitionMetadata`, replaced
//! by the group's metadata hash in Kafka 4.1) is neither written nor read.

use bytes::Bytes;

use super::wire::{Reader, Writer};
use crate::groups::consumer::values::{
    ConsumerRecord, ConsumerRecordKind, CurrentAssignmentValue, GroupEpochValue,
    MemberMetadataValue, MemberState, ResolvedRegexValue, TargetEpochValue, TopicPartitions,
};
use crate::groups::error::GroupError;

pub const GROUP_EPOCH_KEY_TYPE: i16 = 3;
pub const MEMBER_KEY_TYPE: i16 = 5;
pub const TARGET_EPOCH_KEY_TYPE: i16 = 6;
pub const TARGET_MEMBER_KEY_TYPE: i16 = 7;
pub const CURRENT_ASSIGNMENT_KEY_TYPE: i16 = 8;
pub const REGEX_KEY_TYPE: i16 = 16;
/// The only value version of these records (every field added since is tagged).
const VALUE_VERSION: i16 = 0;
/// Tag of `MetadataHash` in the group-epoch value and of `AssignmentTimestamp` in the target-epoch value.
const FIRST_TAG: u32 = 0;

fn malformed(what: String) -> GroupError {
    GroupError::MalformedRecord(what)
}

/// The key bytes of a record.
pub fn encode_key(record: &ConsumerRecord) -> Result<Bytes, GroupError> {
    let mut w = Writer::new(false);
    let (key_type, second): (i16, Option<&str>) = match &record.kind {
        ConsumerRecordKind::GroupEpoch(_) => (GROUP_EPOCH_KEY_TYPE, None),
        ConsumerRecordKind::Member { member_id, .. } => (MEMBER_KEY_TYPE, Some(member_id)),
        ConsumerRecordKind::TargetEpoch(_) => (TARGET_EPOCH_KEY_TYPE, None),
        ConsumerRecordKind::TargetMember { member_id, .. } => {
            (TARGET_MEMBER_KEY_TYPE, Some(member_id))
        }
        ConsumerRecordKind::CurrentAssignment { member_id, .. } => {
            (CURRENT_ASSIGNMENT_KEY_TYPE, Some(member_id))
        }
        ConsumerRecordKind::Regex { regex, .. } => (REGEX_KEY_TYPE, Some(regex)),
    };
    w.i16(key_type);
    w.string(&record.group_id)?;
    if let Some(second) = second {
        w.string(second)?;
    }
    Ok(w.finish())
}

/// The key's fields after its type, and the value: the record back.
pub fn decode(
    key_type: i16,
    key: &mut Reader,
    value: Option<Bytes>,
) -> Result<ConsumerRecord, GroupError> {
    let group_id = key.string("group id")?;
    let mut value = value.map(value_reader).transpose()?;
    let kind = match key_type {
        GROUP_EPOCH_KEY_TYPE => {
            ConsumerRecordKind::GroupEpoch(value.as_mut().map(decode_group_epoch).transpose()?)
        }
        MEMBER_KEY_TYPE => ConsumerRecordKind::Member {
            member_id: key.string("member id")?,
            value: value.as_mut().map(decode_member).transpose()?,
        },
        TARGET_EPOCH_KEY_TYPE => {
            ConsumerRecordKind::TargetEpoch(value.as_mut().map(decode_target_epoch).transpose()?)
        }
        TARGET_MEMBER_KEY_TYPE => ConsumerRecordKind::TargetMember {
            member_id: key.string("member id")?,
            value: value
                .as_mut()
                .map(|r| {
                    let partitions = read_topic_partitions(r)?;
                    r.tagged_fields()?;
                    Ok(partitions)
                })
                .transpose()?,
        },
        CURRENT_ASSIGNMENT_KEY_TYPE => ConsumerRecordKind::CurrentAssignment {
            member_id: key.string("member id")?,
            value: value.as_mut().map(decode_current_assignment).transpose()?,
        },
        REGEX_KEY_TYPE => ConsumerRecordKind::Regex {
            regex: key.string("regular expression")?,
            value: value.as_mut().map(decode_regex).transpose()?,
        },
        other => return Err(malformed(format!("unknown key type {other}"))),
    };
    Ok(ConsumerRecord { group_id, kind })
}

/// The value bytes of a record; `None` for a tombstone.
pub fn encode_value(record: &ConsumerRecord) -> Result<Option<Bytes>, GroupError> {
    let mut w = Writer::new(true);
    w.i16(VALUE_VERSION);
    match &record.kind {
        ConsumerRecordKind::GroupEpoch(None)
        | ConsumerRecordKind::Member { value: None, .. }
        | ConsumerRecordKind::TargetEpoch(None)
        | ConsumerRecordKind::TargetMember { value: None, .. }
        | ConsumerRecordKind::CurrentAssignment { value: None, .. }
        | ConsumerRecordKind::Regex { value: None, .. } => return Ok(None),
        ConsumerRecordKind::GroupEpoch(Some(v)) => {
            w.i32(v.epoch);
            w.tagged_fields_with(&optional_i64_tag(v.metadata_hash));
        }
        ConsumerRecordKind::Member { value: Some(v), .. } => encode_member(&mut w, v)?,
        ConsumerRecordKind::TargetEpoch(Some(v)) => {
            w.i32(v.assignment_epoch);
            w.tagged_fields_with(&optional_i64_tag(v.assignment_timestamp_ms));
        }
        ConsumerRecordKind::TargetMember { value: Some(v), .. } => {
            write_topic_partitions(&mut w, v)?;
            w.tagged_fields();
        }
        ConsumerRecordKind::CurrentAssignment { value: Some(v), .. } => {
            w.i32(v.member_epoch);
            w.i32(v.previous_member_epoch);
            w.i8(v.state.code());
            write_topic_partitions(&mut w, &v.assigned)?;
            write_topic_partitions(&mut w, &v.pending_revocation)?;
            w.tagged_fields();
        }
        ConsumerRecordKind::Regex { value: Some(v), .. } => {
            w.array_len(v.topics.len())?;
            for topic in &v.topics {
                w.string(topic)?;
            }
            w.i64(v.version);
            w.i64(v.timestamp_ms);
            w.tagged_fields();
        }
    }
    Ok(Some(w.finish()))
}

/// Tag 0 holding an `i64`, left out when it is the default 0 (as Kafka's generated code does).
fn optional_i64_tag(value: i64) -> Vec<(u32, Bytes)> {
    if value == 0 {
        return Vec::new();
    }
    vec![(FIRST_TAG, Bytes::copy_from_slice(&value.to_be_bytes()))]
}

fn tagged_i64(fields: &[(u32, Bytes)]) -> Result<i64, GroupError> {
    match fields.iter().find(|(tag, _)| *tag == FIRST_TAG) {
        Some((_, raw)) => {
            let bytes: [u8; 8] = raw[..]
                .try_into()
                .map_err(|_| malformed(format!("tagged i64 of {} bytes", raw.len())))?;
            Ok(i64::from_be_bytes(bytes))
        }
        None => Ok(0),
    }
}

fn value_reader(buf: Bytes) -> Result<Reader, GroupError> {
    let version = Reader::new(buf.clone(), false).i16("value version")?;
    if version != VALUE_VERSION {
        return Err(malformed(format!(
            "unknown consumer group value version {version}"
        )));
    }
    Ok(Reader::new(buf.slice(2..), true))
}

fn decode_group_epoch(r: &mut Reader) -> Result<GroupEpochValue, GroupError> {
    let epoch = r.i32("group epoch")?;
    let metadata_hash = tagged_i64(&r.tagged_fields_read()?)?;
    Ok(GroupEpochValue {
        epoch,
        metadata_hash,
    })
}

fn decode_target_epoch(r: &mut Reader) -> Result<TargetEpochValue, GroupError> {
    let assignment_epoch = r.i32("assignment epoch")?;
    let assignment_timestamp_ms = tagged_i64(&r.tagged_fields_read()?)?;
    Ok(TargetEpochValue {
        assignment_epoch,
        assignment_timestamp_ms,
    })
}

fn encode_member(w: &mut Writer, v: &MemberMetadataValue) -> Result<(), GroupError> {
    w.nullable_string(v.instance_id.as_deref())?;
    w.nullable_string(v.rack_id.as_deref())?;
    w.string(&v.client_id)?;
    w.string(&v.client_host)?;
    w.array_len(v.subscribed_topic_names.len())?;
    for topic in &v.subscribed_topic_names {
        w.string(topic)?;
    }
    w.nullable_string(v.subscribed_topic_regex.as_deref())?;
    w.i32(v.rebalance_timeout_ms);
    w.nullable_string(v.server_assignor.as_deref())?;
    w.tagged_fields();
    Ok(())
}

fn decode_member(r: &mut Reader) -> Result<MemberMetadataValue, GroupError> {
    let instance_id = r.nullable_string("instance id")?;
    let rack_id = r.nullable_string("rack id")?;
    let client_id = r.string("client id")?;
    let client_host = r.string("client host")?;
    let count = r.array_len("subscribed topic names")?;
    let subscribed_topic_names = (0..count)
        .map(|_| r.string("subscribed topic"))
        .collect::<Result<_, _>>()?;
    let subscribed_topic_regex = r.nullable_string("subscribed topic regex")?;
    let rebalance_timeout_ms = r.i32("rebalance timeout")?;
    let server_assignor = r.nullable_string("server assignor")?;
    // Tag 0 is a classic member's protocols (mixed groups), which we never write.
    r.tagged_fields()?;
    Ok(MemberMetadataValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

fn decode_current_assignment(r: &mut Reader) -> Result<CurrentAssignmentValue, GroupError> {
    let member_epoch = r.i32("member epoch")?;
    let previous_member_epoch = r.i32("previous member epoch")?;
    let state = MemberState::from_code(r.i8("member state")?);
    let assigned = read_topic_partitions(r)?;
    let pending_revocation = read_topic_partitions(r)?;
    r.tagged_fields()?;
    Ok(CurrentAssignmentValue {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}

fn decode_regex(r: &mut Reader) -> Result<ResolvedRegexValue, GroupError> {
    let count = r.array_len("regex topics")?;
    let topics = (0..count)
        .map(|_| r.string("regex topic"))
        .collect::<Result<_, _>>()?;
    let version = r.i64("regex version")?;
    let timestamp_ms = r.i64("regex timestamp")?;
    r.tagged_fields()?;
    Ok(ResolvedRegexValue {
        topics,
        version,
        timestamp_ms,
    })
}

/// `[]TopicPartitions`: each `{topic id, []partition, tagged fields}`.
fn write_topic_partitions(w: &mut Writer, partitions: &TopicPartitions) -> Result<(), GroupError> {
    w.array_len(partitions.len())?;
    for (topic_id, set) in partitions {
        w.uuid(topic_id);
        w.i32_array(set.iter().copied())?;
        w.tagged_fields();
    }
    Ok(())
}

fn read_topic_partitions(r: &mut Reader) -> Result<TopicPartitions, GroupError> {
    let count = r.array_len("topic partitions")?;
    let mut out = TopicPartitions::new();
    for _ in 0..count {
        let topic_id = r.uuid("topic id")?;
        let partitions = r.i32_array("partitions")?;
        // Tag 0 (assignment epochs per partition, KIP-1251) is not used.
        r.tagged_fields()?;
        out.entry(topic_id).or_default().extend(partitions);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::record_codec::{decode_record, encode_record};
    use crate::groups::store::CoordinatorRecord;
    use uuid::Uuid;

    fn partitions(topic: u8, list: &[i32]) -> TopicPartitions {
        TopicPartitions::from([(
            Uuid::from_bytes([topic; 16]),
            list.iter().copied().collect(),
        )])
    }

    fn samples() -> Vec<ConsumerRecordKind> {
        vec![
            ConsumerRecordKind::GroupEpoch(Some(GroupEpochValue {
                epoch: 7,
                metadata_hash: -42,
            })),
            ConsumerRecordKind::GroupEpoch(Some(GroupEpochValue {
                epoch: 1,
                metadata_hash: 0,
            })),
            ConsumerRecordKind::Member {
                member_id: "m".into(),
                value: Some(MemberMetadataValue {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["a".into(), "b".into()],
                    subscribed_topic_regex: Some("t.*".into()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("range".into()),
                }),
            },
            ConsumerRecordKind::TargetEpoch(Some(TargetEpochValue {
                assignment_epoch: 7,
                assignment_timestamp_ms: 1_700_000_000_000,
            })),
            ConsumerRecordKind::TargetMember {
                member_id: "m".into(),
                value: Some(partitions(1, &[0, 3, 5])),
            },
            ConsumerRecordKind::CurrentAssignment {
                member_id: "m".into(),
                value: Some(CurrentAssignmentValue {
                    member_epoch: 7,
                    previous_member_epoch: 6,
                    state: MemberState::UnrevokedPartitions,
                    assigned: partitions(1, &[0]),
                    pending_revocation: partitions(2, &[1, 2]),
                }),
            },
            ConsumerRecordKind::Regex {
                regex: "t.*".into(),
                value: Some(ResolvedRegexValue {
                    topics: vec!["ta".into(), "tb".into()],
                    version: 3,
                    timestamp_ms: 9,
                }),
            },
            ConsumerRecordKind::CurrentAssignment {
                member_id: "m".into(),
                value: None,
            },
        ]
    }

    #[test]
    fn every_record_round_trips() {
        for kind in samples() {
            let record = CoordinatorRecord::Consumer(ConsumerRecord {
                group_id: "g".into(),
                kind,
            });
            let (key, value) = encode_record(&record).unwrap();
            assert_eq!(decode_record(key, value).unwrap(), record);
        }
    }

    /// Kafka's layout: `i16 type, string group[, string member]` keys; `i16 version 0` then compact
    /// fields and a tagged-field section in values.
    #[test]
    fn bytes_match_kafka_layout() {
        let record = ConsumerRecord {
            group_id: "g".into(),
            kind: ConsumerRecordKind::GroupEpoch(Some(GroupEpochValue {
                epoch: 2,
                metadata_hash: 1,
            })),
        };
        assert_eq!(&encode_key(&record).unwrap()[..], &[0, 3, 0, 1, b'g']);
        let value = encode_value(&record).unwrap().unwrap();
        // version 0, epoch 2, one tagged field: tag 0, 8 bytes, the hash.
        assert_eq!(
            &value[..],
            &[0, 0, 0, 0, 0, 2, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        let member = ConsumerRecord {
            group_id: "g".into(),
            kind: ConsumerRecordKind::TargetMember {
                member_id: "m".into(),
                value: Some(partitions(1, &[4])),
            },
        };
        assert_eq!(
            &encode_key(&member).unwrap()[..],
            &[0, 7, 0, 1, b'g', 0, 1, b'm']
        );
        let mut expected = vec![0, 0, 2];
        expected.extend_from_slice(&[1; 16]);
        expected.extend_from_slice(&[2, 0, 0, 0, 4, 0, 0]);
        assert_eq!(&encode_value(&member).unwrap().unwrap()[..], &expected[..]);
    }

    #[test]
    fn truncated_values_are_errors() {
        for kind in samples() {
            let record = ConsumerRecord {
                group_id: "g".into(),
                kind,
            };
            let Some(value) = encode_value(&record).unwrap() else {
                continue;
            };
            let key = encode_key(&record).unwrap();
            for cut in 0..value.len() {
                let back = decode_record(key.clone(), Some(value.slice(..cut)));
                assert!(back.is_err(), "{record:?} cut at {cut}");
            }
        }
    }
}
