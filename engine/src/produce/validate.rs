//! What one partition's Produce `records` must be before anything of it is appended, checked on
//! the shard the request arrived on, before any hop: complete v2 batches, each CRC-valid, at most
//! `max.message.bytes`, shaped as a client must send it (`batch::validate_produce_batch`,
//! `batch::check_client_batch`), and holding exactly the records its header claims (the record
//! walk of `records::RecordValidator`: in place for uncompressed batches, streamed through the
//! shard's window for compressed ones).
//!
//! Error codes are Kafka 4.4's answers to the same bytes: INVALID_RECORD (87) for records that
//! are not what the batch claims (malformed, too few or too many, a control batch from a client,
//! an idempotent batch without a sequence, a transactional batch without a producer id), and for
//! a compressed batch that decompresses past its bound; CORRUPT_MESSAGE (2) for bytes that are
//! not a batch at all (bad CRC, cut short) and for a compressed payload the codec cannot decode.
//! Kafka answers that last case with UNKNOWN_SERVER_ERROR; the CRC matched, so the producer sent
//! exactly those bytes and CORRUPT_MESSAGE names what is wrong with them.

use kafka_protocol::ResponseError;
use ringbroker_protocol::batch::{self, BatchError, BatchHeader};
use ringbroker_protocol::records::{InvalidRecords, RecordValidator, RecordsError};

/// A partition's records refused: the Kafka error code, why (logged and, from Produce v8 on,
/// sent as the partition's `error_message`), and the index of the record at fault when one is
/// (sent in `record_errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i16,
    pub reason: String,
    /// Index of the bad record among the partition's records (batches counted in order).
    pub record_index: Option<i32>,
}

impl Refusal {
    fn new(code: ResponseError, reason: String) -> Refusal {
        Refusal {
            code: code.code(),
            reason,
            record_index: None,
        }
    }
}

/// Whether any batch of `records` is transactional (only headers are read; whatever does not
/// parse is left to [`validate_records`]). Kafka requires a transactional id on a request that
/// carries such a batch before it looks at anything else.
pub fn any_transactional(records: &[u8]) -> bool {
    batch::batches(records).any(|item| item.is_ok_and(|(header, _)| header.is_transactional()))
}

/// Checks every batch of a partition's `records` (see the module doc); returns how many there are.
pub fn validate_records(
    records: &[u8],
    max_message_bytes: usize,
    validator: &mut RecordValidator,
) -> Result<usize, Refusal> {
    if records.is_empty() {
        return Err(Refusal::new(
            ResponseError::CorruptMessage,
            "empty records".into(),
        ));
    }
    let mut iter = batch::batches(records);
    let mut batches = 0usize;
    let mut records_before: i64 = 0;
    for item in iter.by_ref() {
        let (header, bytes): (BatchHeader, &[u8]) = item.map_err(batch_refusal)?;
        if header.total_bytes() > max_message_bytes {
            return Err(Refusal::new(
                ResponseError::MessageTooLarge,
                format!(
                    "batch of {} bytes exceeds max_message_bytes {max_message_bytes}",
                    header.total_bytes()
                ),
            ));
        }
        batch::validate_produce_batch(bytes).map_err(batch_refusal)?;
        batch::check_client_batch(&header).map_err(batch_refusal)?;
        validator
            .check(&header, bytes, max_message_bytes)
            .map_err(|invalid| records_refusal(invalid, records_before))?;
        batches += 1;
        records_before += i64::from(header.record_count);
    }
    if iter.remaining() != 0 {
        return Err(Refusal::new(
            ResponseError::CorruptMessage,
            format!(
                "{} trailing bytes are not a complete record batch",
                iter.remaining()
            ),
        ));
    }
    debug_assert!(batches > 0);
    Ok(batches)
}

fn batch_refusal(error: BatchError) -> Refusal {
    let code = match error {
        // Kafka (ProduceRequest.validateRecords): v3+ requests may only carry magic-2 batches,
        // anything else is an InvalidRecordException, answered INVALID_RECORD.
        BatchError::BadMagic(_)
        | BatchError::BadRecordCount { .. }
        | BatchError::ControlBatch
        | BatchError::MissingSequence { .. }
        | BatchError::TransactionalWithoutProducerId => ResponseError::InvalidRecord,
        BatchError::Truncated { .. }
        | BatchError::BadLength(_)
        | BatchError::CrcMismatch { .. }
        | BatchError::BadCompression(_) => ResponseError::CorruptMessage,
    };
    Refusal::new(code, error.to_string())
}

/// `records_before`: records of the partition's earlier batches, so indexes count from the first
/// record of the partition's records.
fn records_refusal(invalid: InvalidRecords, records_before: i64) -> Refusal {
    let reason = invalid.to_string();
    match invalid {
        InvalidRecords::Record { index, .. } => Refusal {
            code: ResponseError::InvalidRecord.code(),
            reason,
            record_index: i32::try_from(records_before + i64::from(index)).ok(),
        },
        InvalidRecords::TrailingBytes { .. }
        | InvalidRecords::Undecodable(RecordsError::DecompressedTooLarge { .. }) => {
            Refusal::new(ResponseError::InvalidRecord, reason)
        }
        InvalidRecords::Undecodable(_) => Refusal::new(ResponseError::CorruptMessage, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::batch::{build_simple_batch, crc32c_of};
    use ringbroker_protocol::records::{BatchBuilder, Compression, Record};

    const CORRUPT_MESSAGE: i16 = 2;
    const MESSAGE_TOO_LARGE: i16 = 10;
    const INVALID_RECORD: i16 = 87;

    fn check(records: &[u8], max_message_bytes: usize) -> Result<usize, Refusal> {
        validate_records(records, max_message_bytes, &mut RecordValidator::new())
    }

    fn code(records: &[u8]) -> Result<usize, i16> {
        check(records, 1 << 20).map_err(|r| r.code)
    }

    /// Patches a header field and fixes the CRC.
    fn patched(mut batch: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
        batch[at..at + bytes.len()].copy_from_slice(bytes);
        let crc = crc32c_of(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn accepts_concatenated_valid_batches() {
        let mut records = build_simple_batch(1, &[b"a", b"b"]);
        records.extend(build_simple_batch(2, &[b"c"]));
        assert_eq!(code(&records), Ok(2));
    }

    #[test]
    fn rejects_a_batch_with_gapped_offset_deltas() {
        // Two records claiming an offset span of three: fine in a compacted log, not from a producer.
        let gapped = patched(
            build_simple_batch(1, &[b"a", b"b"]),
            23,
            &2i32.to_be_bytes(),
        );
        assert!(ringbroker_protocol::batch::validate_log_batch(&gapped).is_ok());
        assert_eq!(code(&gapped), Err(INVALID_RECORD));
    }

    #[test]
    fn rejects_bad_crc_partial_tail_and_oversized() {
        let mut bad = build_simple_batch(1, &[b"abc"]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(code(&bad), Err(CORRUPT_MESSAGE));
        let mut partial = build_simple_batch(1, &[b"abc"]);
        let cut = partial.clone();
        partial.extend_from_slice(&cut[..cut.len() - 1]);
        assert_eq!(code(&partial), Err(CORRUPT_MESSAGE));
        let big = build_simple_batch(1, &[&[7u8; 200]]);
        assert_eq!(check(&big, 100).map_err(|r| r.code), Err(MESSAGE_TOO_LARGE));
        assert_eq!(code(&[]), Err(CORRUPT_MESSAGE));
    }

    #[test]
    fn client_batch_rules_are_invalid_record() {
        let plain = build_simple_batch(1, &[b"a"]);
        // attributes: control (0x20), transactional without a producer id (0x10)
        for attributes in [0x20i16, 0x10] {
            let batch = patched(plain.clone(), 21, &attributes.to_be_bytes());
            assert_eq!(
                code(&batch),
                Err(INVALID_RECORD),
                "attributes {attributes:#x}"
            );
        }
        // a producer id without a base sequence
        let batch = patched(plain, 43, &1000i64.to_be_bytes());
        assert_eq!(code(&batch), Err(INVALID_RECORD));
    }

    #[test]
    fn a_bad_record_is_reported_by_its_index_across_batches() {
        let mut records = build_simple_batch(1, &[b"a", b"b"]);
        let mut second = build_simple_batch(1, &[b"c", b"d", b"e"]);
        // The third record of the second batch: its offset delta (2) becomes 7.
        // Each record of these is 8 bytes: length, attributes, timestamp delta, offset delta,
        // null key, value length, one value byte, header count.
        let third = second.len() - 8;
        assert_eq!(second[third + 3], 4, "zig-zag 2");
        second = patched(second, third + 3, &[14]);
        records.extend(second);
        let refusal = check(&records, 1 << 20).expect_err("refused");
        assert_eq!(refusal.code, INVALID_RECORD);
        assert_eq!(refusal.record_index, Some(4), "{}", refusal.reason);
    }

    fn one_record_batch(codec: Compression, value: &[u8]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(codec);
        builder
            .push(&Record {
                key: None,
                value: Some(value),
                headers: &[],
                timestamp_ms: 1,
            })
            .expect("push");
        builder.finish().expect("finish").to_vec()
    }

    #[test]
    fn compressed_garbage_is_corrupt_and_a_bomb_is_invalid() {
        // 8 MiB of zeros in a few hundred bytes of zstd: far past both bounds.
        let bomb = one_record_batch(Compression::Zstd, &vec![0u8; 8 << 20]);
        let refusal = check(&bomb, 1 << 20).expect_err("a bomb");
        assert_eq!(refusal.code, INVALID_RECORD, "{}", refusal.reason);
        assert_eq!(refusal.record_index, None);
        // A gzip stream cut short (the batch re-framed around the shorter payload).
        let value: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let whole = one_record_batch(Compression::Gzip, &value);
        let mut cut = whole[..whole.len() - 10].to_vec();
        let length = (cut.len() - 12) as i32;
        cut[8..12].copy_from_slice(&length.to_be_bytes());
        let cut = patched(cut, 0, &0i64.to_be_bytes());
        assert_eq!(code(&cut), Err(CORRUPT_MESSAGE));
        assert_eq!(code(&whole), Ok(1));
    }
}
