//! Kafka's committed-offset records: key = `OffsetCommitKey` version 1 (`i16 version, string group,
//! string topic, i32 partition`), value = `OffsetCommitValue` version 3 (`i16 version, i64 offset,
//! i32 leader_epoch, string metadata, i64 commit_timestamp`). Values of versions 0, 1 and 3 are read
//! (Kafka wrote all three).

use bytes::Bytes;

use super::wire::{Reader, Writer};
use crate::groups::error::GroupError;
use crate::groups::store::{CommittedOffset, OffsetKey};

/// Key schema version of an offset commit (versions 0 and 1 are identical on the wire).
pub const OFFSET_KEY_VERSION: i16 = 1;
/// Value schema version we write.
const OFFSET_VALUE_VERSION: i16 = 3;

pub fn encode_key(key: &OffsetKey) -> Result<Bytes, GroupError> {
    let mut w = Writer::new(false);
    w.i16(OFFSET_KEY_VERSION);
    w.string(&key.group_id)?;
    w.string(&key.topic)?;
    w.i32(key.partition);
    Ok(w.finish())
}

/// The key's fields after its version (already read by the caller).
pub fn decode_key_body(r: &mut Reader) -> Result<OffsetKey, GroupError> {
    Ok(OffsetKey {
        group_id: r.string("offset key group")?,
        topic: r.string("offset key topic")?,
        partition: r.i32("offset key partition")?,
    })
}

pub fn encode_value(value: &CommittedOffset) -> Result<Bytes, GroupError> {
    let mut w = Writer::new(false);
    w.i16(OFFSET_VALUE_VERSION);
    w.i64(value.offset);
    w.i32(value.leader_epoch);
    w.string(&value.metadata)?;
    w.i64(value.commit_timestamp_ms);
    Ok(w.finish())
}

pub fn decode_value(buf: Bytes) -> Result<CommittedOffset, GroupError> {
    let mut r = Reader::new(buf, false);
    let version = r.i16("offset value version")?;
    if !matches!(version, 0 | 1 | 3) {
        return Err(GroupError::MalformedRecord(format!(
            "unknown offset value version {version}"
        )));
    }
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leader epoch")?
    } else {
        -1
    };
    let metadata = r.string("offset metadata")?;
    // Version 1 carries an expire timestamp after the commit timestamp; we count retention from the
    // commit, so it is left unread.
    let commit_timestamp_ms = r.i64("commit timestamp")?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::record_codec::{decode_key, DecodedKey};

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
            other => panic!("decoded as {other:?}"),
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
