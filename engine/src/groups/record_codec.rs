//! Kafka's `__consumer_offsets` record formats for committed offsets, so our offsets log reads like
//! Kafka's: key = `OffsetCommitKey` version 1 (`i16 version, string group, string topic, i32 partition`),
//! value = `OffsetCommitValue` version 3 (`i16 version, i64 offset, i32 leader_epoch, string metadata,
//! i64 commit_timestamp`). Strings are `i16` length + UTF-8. Values of versions 0, 1 and 3 are read (Kafka
//! wrote all three); group-metadata keys (version 2) are skipped by the caller.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::GroupError;
use super::store::{CommittedOffset, OffsetKey};

/// Key schema version of an offset commit (versions 0 and 1 are identical on the wire).
const OFFSET_KEY_VERSION: i16 = 1;
/// Key schema version of a group-metadata record (Kafka's membership snapshot, which we do not write).
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value schema version we write.
const OFFSET_VALUE_VERSION: i16 = 3;

/// What a stored key holds.
pub enum DecodedKey {
    Offset(OffsetKey),
    /// A group-metadata record: not ours to interpret.
    GroupMetadata,
}

fn put_string(buf: &mut BytesMut, value: &str) -> Result<(), GroupError> {
    let len = i16::try_from(value.len()).map_err(|_| {
        GroupError::MalformedRecord(format!("string of {} bytes exceeds i16", value.len()))
    })?;
    buf.put_i16(len);
    buf.put_slice(value.as_bytes());
    Ok(())
}

fn get_string(buf: &mut Bytes) -> Result<String, GroupError> {
    if buf.remaining() < 2 {
        return Err(GroupError::MalformedRecord(
            "truncated string length".into(),
        ));
    }
    let len = buf.get_i16();
    let len = usize::try_from(len)
        .map_err(|_| GroupError::MalformedRecord("negative string length".into()))?;
    if buf.remaining() < len {
        return Err(GroupError::MalformedRecord("truncated string".into()));
    }
    let raw = buf.split_to(len);
    String::from_utf8(raw.to_vec())
        .map_err(|_| GroupError::MalformedRecord("string is not UTF-8".into()))
}

fn need(buf: &Bytes, bytes: usize, what: &str) -> Result<(), GroupError> {
    if buf.remaining() < bytes {
        return Err(GroupError::MalformedRecord(format!("truncated {what}")));
    }
    Ok(())
}

pub fn encode_key(key: &OffsetKey) -> Result<Bytes, GroupError> {
    let mut buf = BytesMut::with_capacity(2 + 2 + key.group_id.len() + 2 + key.topic.len() + 4);
    buf.put_i16(OFFSET_KEY_VERSION);
    put_string(&mut buf, &key.group_id)?;
    put_string(&mut buf, &key.topic)?;
    buf.put_i32(key.partition);
    Ok(buf.freeze())
}

pub fn encode_value(value: &CommittedOffset) -> Result<Bytes, GroupError> {
    let mut buf = BytesMut::with_capacity(2 + 8 + 4 + 2 + value.metadata.len() + 8);
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, &value.metadata)?;
    buf.put_i64(value.commit_timestamp_ms);
    Ok(buf.freeze())
}

pub fn decode_key(mut buf: Bytes) -> Result<DecodedKey, GroupError> {
    need(&buf, 2, "key version")?;
    match buf.get_i16() {
        0 | 1 => {
            let group_id = get_string(&mut buf)?;
            let topic = get_string(&mut buf)?;
            need(&buf, 4, "key partition")?;
            let partition = buf.get_i32();
            Ok(DecodedKey::Offset(OffsetKey {
                group_id,
                topic,
                partition,
            }))
        }
        GROUP_METADATA_KEY_VERSION => Ok(DecodedKey::GroupMetadata),
        other => Err(GroupError::MalformedRecord(format!(
            "unknown key version {other}"
        ))),
    }
}

pub fn decode_value(mut buf: Bytes) -> Result<CommittedOffset, GroupError> {
    need(&buf, 2, "value version")?;
    let version = buf.get_i16();
    need(&buf, 8, "offset")?;
    let offset = buf.get_i64();
    let leader_epoch = if version >= 3 {
        need(&buf, 4, "leader epoch")?;
        buf.get_i32()
    } else {
        -1
    };
    let metadata = get_string(&mut buf)?;
    need(&buf, 8, "commit timestamp")?;
    let commit_timestamp_ms = buf.get_i64();
    match version {
        // Version 1 carries an expire timestamp after the commit timestamp; we count retention from the
        // commit, so it is read past and ignored.
        0 | 1 | 3 => Ok(CommittedOffset {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        }),
        other => Err(GroupError::MalformedRecord(format!(
            "unknown value version {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_round_trip() {
        let key = OffsetKey {
            group_id: "g".into(),
            topic: "orders".into(),
            partition: 7,
        };
        let value = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta ü".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        match decode_key(encode_key(&key).unwrap()).unwrap() {
            DecodedKey::Offset(decoded) => assert_eq!(decoded, key),
            DecodedKey::GroupMetadata => panic!("decoded as group metadata"),
        }
        assert_eq!(decode_value(encode_value(&value).unwrap()).unwrap(), value);
    }

    #[test]
    fn key_bytes_match_kafka_layout() {
        let key = OffsetKey {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 1,
        };
        let bytes = encode_key(&key).unwrap();
        assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let value = CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: "x".into(),
            commit_timestamp_ms: 2,
        };
        let bytes = encode_value(&value).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_value(bytes.slice(..cut)).is_err());
        }
        let key = encode_key(&OffsetKey {
            group_id: "g".into(),
            topic: "t".into(),
            partition: 1,
        })
        .unwrap();
        for cut in 0..key.len() {
            assert!(decode_key(key.slice(..cut)).is_err());
        }
    }
}
