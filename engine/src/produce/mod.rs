//! The produce path for one partition: validate the producer's record batches, append them on
//! the owning shard (in place when that is this shard, over the mesh otherwise) and report the
//! base offset. Batches are not decoded: only their 61-byte headers are read (docs/COMPATIBILITY.md section 5),
//! except on compacted topics, whose records must all carry a key (`keys`).

mod keys;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ringbroker_protocol::batch::{self, BatchError, BatchHeader};
use ringbroker_schema::{
    Payload, ProduceRequest as MeshProduce, ProduceRequestArgs, ProduceResult, ProduceResultArgs,
};

use crate::errors::{self, storage_error_code};
use crate::metrics::{hooks, Stage};
use crate::producer_state::Decision;
use crate::shard::Shard;

/// What one partition's produce came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceOutcome {
    pub error_code: i16,
    pub base_offset: i64,
    pub log_start_offset: i64,
    /// Broker time stamped on a LogAppendTime topic; -1 under CreateTime.
    pub log_append_time_ms: i64,
}

impl ProduceOutcome {
    pub fn error(code: i16) -> ProduceOutcome {
        ProduceOutcome {
            error_code: code,
            base_offset: -1,
            log_start_offset: -1,
            log_append_time_ms: -1,
        }
    }
}

/// Checks every batch of a Produce `records` field: complete v2 batches as a producer must send
/// them (`batch::validate_produce_batch`: contiguous offset deltas, at least one record), each
/// CRC-valid and at most `max_message_bytes`. Returns the Kafka error code to answer with, and a reason to log.
pub fn validate_records(records: &[u8], max_message_bytes: usize) -> Result<usize, (i16, String)> {
    if records.is_empty() {
        return Err((ResponseError::CorruptMessage.code(), "empty records".into()));
    }
    let mut iter = batch::batches(records);
    let mut count = 0usize;
    for item in iter.by_ref() {
        let (header, bytes): (BatchHeader, &[u8]) = item.map_err(batch_error)?;
        if header.total_bytes() > max_message_bytes {
            return Err((
                ResponseError::MessageTooLarge.code(),
                format!(
                    "batch of {} bytes exceeds max_message_bytes {max_message_bytes}",
                    header.total_bytes()
                ),
            ));
        }
        batch::validate_produce_batch(bytes).map_err(batch_error)?;
        count += 1;
    }
    if iter.remaining() != 0 {
        return Err((
            ResponseError::CorruptMessage.code(),
            format!(
                "{} trailing bytes are not a complete record batch",
                iter.remaining()
            ),
        ));
    }
    debug_assert!(count > 0);
    Ok(count)
}

fn batch_error(e: BatchError) -> (i16, String) {
    let code = match e {
        // Kafka (ProduceRequest.validateRecords): v3+ requests may only carry magic-2 batches,
        // anything else is an InvalidRecordException, answered INVALID_RECORD.
        BatchError::BadMagic(_) => ResponseError::InvalidRecord.code(),
        BatchError::BadRecordCount { .. } => ResponseError::InvalidRecord.code(),
        _ => ResponseError::CorruptMessage.code(),
    };
    (code, e.to_string())
}

/// Appends already-validated batches to a partition this shard owns.
pub async fn append_local(
    shard: &Shard,
    topic: &str,
    partition: i32,
    records: &[u8],
) -> ProduceOutcome {
    let Some(log) = shard.log(topic, partition) else {
        return ProduceOutcome::error(ResponseError::UnknownTopicOrPartition.code());
    };
    // Checked on the owning shard, before the producer state sees the batches (Kafka's
    // LogValidator runs before the duplicate check), and synchronously like it.
    let compacted = shard
        .topic_table()
        .get(topic)
        .is_some_and(|meta| keys::keys_required(&shard.config, &meta.configs));
    if compacted {
        if let Err((code, reason)) = keys::check_keys(records, topic, partition) {
            tracing::warn!(topic, partition, error_code = code, %reason, "rejected produce");
            return ProduceOutcome::error(code);
        }
    }
    // Idempotent producers: checked and recorded synchronously with the offsets `append` is
    // about to assign (no await in between), so pipelined batches are checked in order.
    let end = log.log_end_offset();
    match shard
        .producers
        .check_and_record(topic, partition, records, end)
    {
        Decision::Append => {}
        Decision::Duplicate { base_offset } => {
            return ProduceOutcome {
                error_code: errors::NONE,
                base_offset,
                log_start_offset: log.log_start_offset(),
                log_append_time_ms: -1,
            }
        }
        Decision::Reject(code) => return ProduceOutcome::error(code),
    }
    // Every batch is stamped with the partition's current leader epoch (the leader-epoch cache
    // and, with replication, followers' truncation rely on it).
    let leader_epoch = shard.leader_epoch(topic, partition);
    let append = log.append(records, leader_epoch);
    match hooks::timed(shard.metrics(), Stage::ProduceAppend, append).await {
        Ok(outcome) => {
            hooks::appended(shard.metrics(), records.len(), &outcome);
            ProduceOutcome {
                error_code: errors::NONE,
                base_offset: outcome.base_offset,
                log_start_offset: log.log_start_offset(),
                log_append_time_ms: outcome.log_append_time_ms,
            }
        }
        Err(e) => {
            tracing::warn!(topic, partition, error = %e, "append failed");
            shard.producers.rollback(topic, partition, end);
            ProduceOutcome::error(storage_error_code(&e))
        }
    }
}

/// Appends to a partition wherever it lives. Per-connection order holds: local appends take
/// their offsets when first polled, remote ones travel a FIFO channel to the owner, which
/// appends in arrival order.
pub async fn append(shard: &Shard, topic: &str, partition: i32, records: Bytes) -> ProduceOutcome {
    let owner = shard.owner_of(topic, partition);
    if owner == shard.id {
        return append_local(shard, topic, partition, &records).await;
    }
    let hop = shard.mesh.call(owner, records.len() + 128, |fbb| {
        let topic = fbb.create_string(topic);
        let records = fbb.create_vector(&records);
        let request = MeshProduce::create(
            fbb,
            &ProduceRequestArgs {
                topic: Some(topic),
                partition,
                records: Some(records),
            },
        );
        (Payload::ProduceRequest, request.as_union_value())
    });
    let reply = hooks::timed(shard.metrics(), Stage::ProduceHop, hop).await;
    let message = match reply {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(topic, partition, error = %e, "cross-shard produce failed");
            return ProduceOutcome::error(ResponseError::NotLeaderOrFollower.code());
        }
    };
    match message
        .envelope()
        .ok()
        .and_then(|env| env.payload_as_produce_result())
    {
        Some(result) => ProduceOutcome {
            error_code: result.error_code(),
            base_offset: result.base_offset(),
            log_start_offset: result.log_start_offset(),
            log_append_time_ms: result.log_append_time_ms(),
        },
        None => ProduceOutcome::error(ResponseError::UnknownServerError.code()),
    }
}

/// Serves a produce request that arrived over the mesh (this shard owns the partition).
pub async fn serve_remote(shard: &Shard, from: usize, correlation: u64, request: MeshProduce<'_>) {
    let topic = request.topic().unwrap_or_default();
    let records = request.records().map(|v| v.bytes()).unwrap_or_default();
    let outcome = append_local(shard, topic, request.partition(), records).await;
    shard
        .mesh
        .reply(from, correlation, 64, |fbb| {
            let result = ProduceResult::create(
                fbb,
                &ProduceResultArgs {
                    error_code: outcome.error_code,
                    base_offset: outcome.base_offset,
                    log_start_offset: outcome.log_start_offset,
                    log_append_time_ms: outcome.log_append_time_ms,
                },
            );
            (Payload::ProduceResult, result.as_union_value())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::batch::build_simple_batch;

    #[test]
    fn accepts_concatenated_valid_batches() {
        let mut records = build_simple_batch(1, &[b"a", b"b"]);
        records.extend(build_simple_batch(2, &[b"c"]));
        assert_eq!(validate_records(&records, 1 << 20), Ok(2));
    }

    #[test]
    fn rejects_a_batch_with_gapped_offset_deltas() {
        // Two records claiming an offset span of three: fine in a compacted log, not from a producer.
        let mut gapped = build_simple_batch(1, &[b"a", b"b"]);
        gapped[23..27].copy_from_slice(&2i32.to_be_bytes());
        let crc = ringbroker_protocol::batch::crc32c_of(&gapped);
        gapped[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(ringbroker_protocol::batch::validate_log_batch(&gapped).is_ok());
        assert_eq!(validate_records(&gapped, 1 << 20).map_err(|e| e.0), Err(87));
    }

    #[test]
    fn rejects_bad_crc_partial_tail_and_oversized() {
        let mut bad = build_simple_batch(1, &[b"abc"]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(validate_records(&bad, 1 << 20).map_err(|e| e.0), Err(2));
        let mut partial = build_simple_batch(1, &[b"abc"]);
        let cut = partial.clone();
        partial.extend_from_slice(&cut[..cut.len() - 1]);
        assert_eq!(validate_records(&partial, 1 << 20).map_err(|e| e.0), Err(2));
        let big = build_simple_batch(1, &[&[7u8; 200]]);
        assert_eq!(validate_records(&big, 100).map_err(|e| e.0), Err(10));
        assert_eq!(validate_records(&[], 100).map_err(|e| e.0), Err(2));
    }
}
