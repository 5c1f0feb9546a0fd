//! Kafka's rule for compacted topics: every record produced to a topic whose `cleanup.policy`
//! includes `compact` must carry a key (the cleaner keeps the latest record per key, so a keyless
//! record could never be compacted). Kafka's `LogValidator` refuses such a batch with
//! `InvalidRecordException`, answered INVALID_RECORD for the partition.
//!
//! This is the one place the produce path looks inside records: only for compacted topics, with
//! each batch decompressed once (`records::decode_records`).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use ringbroker_protocol::records::decode_records;

use crate::config::BrokerConfig;
use crate::topic_config::{TopicSettings, CLEANUP_POLICY};

/// True when the topic's `cleanup.policy` includes `compact`. The broker default is `delete`, so
/// only a topic with an explicit `cleanup.policy` pays for a resolve.
pub fn keys_required(broker: &BrokerConfig, configs: &BTreeMap<String, String>) -> bool {
    configs.contains_key(CLEANUP_POLICY)
        && TopicSettings::resolve(broker, configs)
            .cleanup_policy
            .compact
}

/// Checks that every record of the (already validated) `records` has a key. Returns the Kafka
/// error code to answer with and Kafka's error message.
pub fn check_keys(records: &[u8], topic: &str, partition: i32) -> Result<(), (i16, String)> {
    let decoded = decode_records(records).map_err(|e| {
        (
            ResponseError::CorruptMessage.code(),
            format!("records of {topic}-{partition} cannot be decoded: {e}"),
        )
    })?;
    if decoded.iter().any(|record| record.key.is_none()) {
        return Err((
            ResponseError::InvalidRecord.code(),
            format!(
                "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::batch::build_simple_batch;
    use ringbroker_protocol::records::{BatchBuilder, Compression, Record};

    const INVALID_RECORD: i16 = 87;

    fn batch(codec: Compression, keys: &[Option<&[u8]>]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(codec);
        for key in keys {
            builder
                .push(&Record {
                    key: *key,
                    value: Some(b"value"),
                    headers: &[],
                    timestamp_ms: 1,
                })
                .unwrap();
        }
        builder.finish().unwrap().to_vec()
    }

    #[test]
    fn only_a_compact_policy_requires_keys() {
        let broker = BrokerConfig::default();
        let with = |policy: &str| {
            let configs = BTreeMap::from([(CLEANUP_POLICY.to_string(), policy.to_string())]);
            keys_required(&broker, &configs)
        };
        assert!(with("compact"));
        assert!(with("compact,delete"));
        assert!(with("delete,compact"));
        assert!(!with("delete"));
        assert!(!keys_required(&broker, &BTreeMap::new()));
    }

    #[test]
    fn keyed_records_pass_in_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut records = batch(codec, &[Some(b"a"), Some(b"b")]);
            records.extend(batch(codec, &[Some(b"")]));
            assert_eq!(check_keys(&records, "t", 0), Ok(()), "{codec:?}");
        }
    }

    #[test]
    fn one_keyless_record_refuses_the_partition_as_kafka_does() {
        for codec in [Compression::None, Compression::Zstd] {
            let mut records = batch(codec, &[Some(b"a")]);
            records.extend(batch(codec, &[Some(b"b"), None]));
            let (code, message) = check_keys(&records, "topic", 3).unwrap_err();
            assert_eq!(code, INVALID_RECORD);
            assert_eq!(
                message,
                "Compacted topic cannot accept message without key in topic partition topic-3."
            );
        }
        // The tools' simple batches carry null keys.
        let simple = build_simple_batch(1, &[b"x"]);
        assert_eq!(
            check_keys(&simple, "t", 0).map_err(|e| e.0),
            Err(INVALID_RECORD)
        );
    }
}
