//! `__transaction_state` records in Kafka's formats: the key is `TransactionLogKey` v0 (the
//! transactional id), the value `TransactionLogValue` v0 (producer id and epoch, timeout, status,
//! the transaction's partitions, timestamps). A null value is a tombstone.
//!
//! Earlier versions wrote one extension after Kafka's v0 fields: the offsets committed inside the
//! transaction (TxnOffsetCommit). The group coordinators hold those now, in `__consumer_offsets`
//! as Kafka does; the extension is no longer written, and skipped when read.

use bytes::Bytes;

use super::error::TxnError;
use super::metadata::{TxnMetadata, TxnStatus};
use crate::groups::record_codec::wire::{Reader, Writer};
use crate::groups::GroupError;

/// Kafka's `TransactionLogKey` version.
const KEY_VERSION: i16 = 0;
/// Kafka's `TransactionLogValue` version written (v1 adds KIP-890's tagged fields, not used).
const VALUE_VERSION: i16 = 0;

fn codec_error(e: GroupError) -> TxnError {
    TxnError::Malformed(e.to_string())
}

pub fn encode_key(transactional_id: &str) -> Result<Bytes, TxnError> {
    let mut w = Writer::new(false);
    w.i16(KEY_VERSION);
    w.string(transactional_id).map_err(codec_error)?;
    Ok(w.finish())
}

pub fn decode_key(key: Bytes) -> Result<String, TxnError> {
    let mut r = Reader::new(key, false);
    let version = r.i16("key version").map_err(codec_error)?;
    if version != KEY_VERSION {
        return Err(TxnError::Malformed(format!("key version {version}")));
    }
    r.string("transactional id").map_err(codec_error)
}

pub fn encode_value(txn: &TxnMetadata) -> Result<Bytes, TxnError> {
    let mut w = Writer::new(false);
    w.i16(VALUE_VERSION);
    w.i64(txn.producer_id);
    w.i16(txn.producer_epoch);
    w.i32(txn.timeout_ms);
    w.i8(txn.status as i8);
    // Partitions grouped by topic, as Kafka writes them.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &txn.partitions {
        match topics.last_mut() {
            Some((last, list)) if *last == topic.as_str() => list.push(*partition),
            _ => topics.push((topic.as_str(), vec![*partition])),
        }
    }
    w.array_len(topics.len()).map_err(codec_error)?;
    for (topic, partitions) in &topics {
        w.string(topic).map_err(codec_error)?;
        w.i32_array(partitions.iter().copied())
            .map_err(codec_error)?;
    }
    w.i64(txn.last_update_ms);
    w.i64(txn.start_ms);
    Ok(w.finish())
}

pub fn decode_value(transactional_id: &str, value: Bytes) -> Result<TxnMetadata, TxnError> {
    let has_extension = |r: &Reader| !r.is_empty();
    let mut r = Reader::new(value, false);
    let version = r.i16("value version").map_err(codec_error)?;
    if version != VALUE_VERSION {
        return Err(TxnError::Malformed(format!("value version {version}")));
    }
    let producer_id = r.i64("producer id").map_err(codec_error)?;
    let producer_epoch = r.i16("producer epoch").map_err(codec_error)?;
    let timeout_ms = r.i32("timeout").map_err(codec_error)?;
    let status_id = r.i8("status").map_err(codec_error)?;
    let status = TxnStatus::from_id(status_id)
        .ok_or_else(|| TxnError::Malformed(format!("status {status_id}")))?;
    let mut partitions = std::collections::BTreeSet::new();
    for _ in 0..r.array_len("partitions").map_err(codec_error)? {
        let topic = r.string("topic").map_err(codec_error)?;
        for p in r.i32_array("partition ids").map_err(codec_error)? {
            partitions.insert((topic.clone(), p));
        }
    }
    let last_update_ms = r.i64("last update").map_err(codec_error)?;
    let start_ms = r.i64("start").map_err(codec_error)?;
    if has_extension(&r) {
        skip_legacy_pending_offsets(&mut r)?;
    }
    Ok(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        start_ms,
        last_update_ms,
    })
}

/// Reads past the pending offsets an earlier version kept with the transaction.
fn skip_legacy_pending_offsets(r: &mut Reader) -> Result<(), TxnError> {
    for _ in 0..r.array_len("pending offsets").map_err(codec_error)? {
        r.string("group").map_err(codec_error)?;
        r.string("member").map_err(codec_error)?;
        r.i32("generation").map_err(codec_error)?;
        r.string("topic").map_err(codec_error)?;
        r.i32("partition").map_err(codec_error)?;
        r.i64("offset").map_err(codec_error)?;
        r.i32("leader epoch").map_err(codec_error)?;
        r.nullable_string("metadata").map_err(codec_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_round_trips_with_its_partitions() {
        let txn = TxnMetadata::new("app-1", 42, 60_000, 5)
            .add_partitions(&[("b".into(), 1), ("a".into(), 0), ("a".into(), 3)], 9)
            .unwrap()
            .unwrap();
        let key = encode_key("app-1").unwrap();
        assert_eq!(decode_key(key).unwrap(), "app-1");
        let value = encode_value(&txn).unwrap();
        assert_eq!(decode_value("app-1", value).unwrap(), txn);
    }

    #[test]
    fn an_earlier_versions_pending_offsets_are_skipped() {
        let txn = TxnMetadata::new("x", 1, 1_000, 2);
        let mut value = encode_value(&txn).unwrap().to_vec();
        // One pending offset as earlier versions appended it.
        value.extend_from_slice(&1i32.to_be_bytes());
        for field in ["g", "m"] {
            value.extend_from_slice(&1i16.to_be_bytes());
            value.extend_from_slice(field.as_bytes());
        }
        value.extend_from_slice(&3i32.to_be_bytes());
        value.extend_from_slice(&1i16.to_be_bytes());
        value.extend_from_slice(b"a");
        value.extend_from_slice(&0i32.to_be_bytes());
        value.extend_from_slice(&17i64.to_be_bytes());
        value.extend_from_slice(&(-1i32).to_be_bytes());
        value.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(decode_value("x", Bytes::from(value)).unwrap(), txn);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_value("x", Bytes::from_static(&[0, 0, 1])).is_err());
        assert!(decode_key(Bytes::from_static(&[0, 9])).is_err());
    }
}
