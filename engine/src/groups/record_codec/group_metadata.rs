//! Kafka's classic-group metadata record: key = `GroupMetadataKey` version 2 (`i16 version, string
//! group`), value = `GroupMetadataValue`. We write value version 3 (what Kafka 4 writes) and read versions
//! 0-4: v1 added each member's rebalance timeout, v2 the group's current-state timestamp, v3 each member's
//! group instance id, v4 is v3 as a flexible version (compact strings, tagged fields).

use bytes::Bytes;

use super::wire::{Reader, Writer};
use crate::groups::error::GroupError;
use crate::groups::store::{GroupMetadata, StoredMember};

/// Key schema version of a group-metadata record (the "record type" of Kafka's coordinator keys).
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version we write.
const VALUE_VERSION_WRITTEN: i16 = 3;
/// Newest value version we read.
const VALUE_VERSION_MAX: i16 = 4;
/// First value version with each member's rebalance timeout...
const REBALANCE_TIMEOUT_VERSION: i16 = 1;
/// ...with the group's current-state timestamp...
const STATE_TIMESTAMP_VERSION: i16 = 2;
/// ...with each member's group instance id...
const INSTANCE_ID_VERSION: i16 = 3;
/// ...and the first flexible version.
const FLEXIBLE_VERSION: i16 = 4;

pub fn encode_key(group_id: &str) -> Result<Bytes, GroupError> {
    let mut w = Writer::new(false);
    w.i16(GROUP_METADATA_KEY_VERSION);
    w.string(group_id)?;
    Ok(w.finish())
}

pub fn decode_key_body(r: &mut Reader) -> Result<String, GroupError> {
    r.string("group metadata key group")
}

pub fn encode_value(value: &GroupMetadata) -> Result<Bytes, GroupError> {
    encode_value_version(value, VALUE_VERSION_WRITTEN)
}

fn encode_value_version(value: &GroupMetadata, version: i16) -> Result<Bytes, GroupError> {
    debug_assert!((0..=VALUE_VERSION_MAX).contains(&version));
    let mut w = Writer::new(version >= FLEXIBLE_VERSION);
    w.i16(version);
    w.string(&value.protocol_type)?;
    w.i32(value.generation_id);
    w.nullable_string(value.protocol_name.as_deref())?;
    w.nullable_string(value.leader_id.as_deref())?;
    if version >= STATE_TIMESTAMP_VERSION {
        w.i64(value.current_state_timestamp_ms);
    }
    w.array_len(value.members.len())?;
    for member in &value.members {
        w.string(&member.member_id)?;
        if version >= INSTANCE_ID_VERSION {
            w.nullable_string(member.group_instance_id.as_deref())?;
        }
        w.string(&member.client_id)?;
        w.string(&member.client_host)?;
        if version >= REBALANCE_TIMEOUT_VERSION {
            w.i32(member.rebalance_timeout_ms);
        }
        w.i32(member.session_timeout_ms);
        w.bytes(&member.subscription)?;
        w.bytes(&member.assignment)?;
        w.tagged_fields();
    }
    w.tagged_fields();
    Ok(w.finish())
}

pub fn decode_value(buf: Bytes) -> Result<GroupMetadata, GroupError> {
    let version = Reader::new(buf.clone(), false).i16("group metadata value version")?;
    if !(0..=VALUE_VERSION_MAX).contains(&version) {
        return Err(GroupError::MalformedRecord(format!(
            "unknown group metadata value version {version}"
        )));
    }
    let mut r = Reader::new(buf.slice(2..), version >= FLEXIBLE_VERSION);
    let protocol_type = r.string("protocol type")?;
    let generation_id = r.i32("generation")?;
    let protocol_name = r.nullable_string("protocol")?;
    let leader_id = r.nullable_string("leader")?;
    let current_state_timestamp_ms = if version >= STATE_TIMESTAMP_VERSION {
        r.i64("current state timestamp")?
    } else {
        -1
    };
    let count = r.array_len("members")?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let member_id = r.string("member id")?;
        let group_instance_id = if version >= INSTANCE_ID_VERSION {
            r.nullable_string("group instance id")?
        } else {
            None
        };
        let client_id = r.string("client id")?;
        let client_host = r.string("client host")?;
        let session_or_rebalance = r.i32("timeout")?;
        // Before v1 there is only the session timeout, which then bounds rebalances too (JoinGroup v0).
        let (rebalance_timeout_ms, session_timeout_ms) = if version >= REBALANCE_TIMEOUT_VERSION {
            (session_or_rebalance, r.i32("session timeout")?)
        } else {
            (session_or_rebalance, session_or_rebalance)
        };
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        r.tagged_fields()?;
        members.push(StoredMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupMetadata {
        protocol_type,
        generation_id,
        protocol_name,
        leader_id,
        current_state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GroupMetadata {
        GroupMetadata {
            protocol_type: "consumer".into(),
            generation_id: 7,
            protocol_name: Some("range".into()),
            leader_id: Some("m-1".into()),
            current_state_timestamp_ms: 1_700_000_000_000,
            members: vec![
                StoredMember {
                    member_id: "m-1".into(),
                    group_instance_id: Some("i-1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assign"),
                },
                StoredMember {
                    member_id: "m-2".into(),
                    group_instance_id: None,
                    client_id: "c2".into(),
                    client_host: "/10.0.0.2".into(),
                    rebalance_timeout_ms: 60_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn every_version_round_trips_what_it_carries() {
        for version in 0..=VALUE_VERSION_MAX {
            let mut expected = sample();
            if version < STATE_TIMESTAMP_VERSION {
                expected.current_state_timestamp_ms = -1;
            }
            for member in &mut expected.members {
                if version < INSTANCE_ID_VERSION {
                    member.group_instance_id = None;
                }
                if version < REBALANCE_TIMEOUT_VERSION {
                    member.rebalance_timeout_ms = member.session_timeout_ms;
                }
            }
            let bytes = encode_value_version(&sample(), version).unwrap();
            assert_eq!(decode_value(bytes).unwrap(), expected, "version {version}");
        }
    }

    /// The v3 bytes of a one-member group, laid out field by field as Kafka's GroupMetadataValue schema
    /// (so Kafka's tools read our log and we read Kafka's).
    #[test]
    fn version_3_bytes_match_kafka_layout() {
        let value = GroupMetadata {
            protocol_type: "consumer".into(),
            generation_id: 1,
            protocol_name: Some("range".into()),
            leader_id: None,
            current_state_timestamp_ms: 2,
            members: vec![StoredMember {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 3,
                session_timeout_ms: 4,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::new(),
            }],
        };
        let mut expected: Vec<u8> = vec![0, 3, 0, 8];
        expected.extend_from_slice(b"consumer");
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 5]);
        expected.extend_from_slice(b"range");
        expected.extend_from_slice(&[0xff, 0xff]); // null leader
        expected.extend_from_slice(&2i64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 1]); // one member
        expected.extend_from_slice(&[0, 1, b'm', 0xff, 0xff, 0, 1, b'c', 0, 1, b'h']);
        expected.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 1, b's', 0, 0, 0, 0]);
        assert_eq!(&encode_value(&value).unwrap()[..], &expected[..]);
        assert_eq!(&encode_key("g").unwrap()[..], &[0, 2, 0, 1, b'g']);
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        for version in 0..=VALUE_VERSION_MAX {
            let bytes = encode_value_version(&sample(), version).unwrap();
            for cut in 0..bytes.len() {
                assert!(
                    decode_value(bytes.slice(..cut)).is_err(),
                    "v{version} cut {cut}"
                );
            }
        }
    }
}
