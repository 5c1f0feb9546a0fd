//! Record-level view of a stored v2 batch for the cleaner: listing each record's offset, key and
//! whether it is a tombstone, and rewriting a batch with only some of its records.
//!
//! A rewritten batch keeps every header field a consumer or the producer-state recovery relies on
//! (base offset, last offset delta, base and max timestamp, producer id, epoch, base sequence,
//! attributes and codec): records keep their offset and timestamp deltas, so consumers see offset
//! gaps, exactly as with Kafka's cleaner. Only the batch length, record count and CRC32C change;
//! compressed batches are recompressed with their own codec.

use ringbroker_protocol::batch::{
    crc32c_of, BatchHeader, Compression, BATCH_HEADER_BYTES, CRC_START,
};
use ringbroker_protocol::records::compression::{compress, decompress};
use ringbroker_protocol::records::RecordsError;

use crate::storage::error::StorageError;

/// Position of the batch length field in a v2 batch header.
const BATCH_LENGTH_AT: usize = 8;
/// Position of the CRC32C field.
const CRC_AT: usize = 17;
/// Position of the record count field.
const RECORD_COUNT_AT: usize = 57;
/// Bytes before the batch length field counts from (base offset + batch length).
const LENGTH_PREFIX_BYTES: usize = 12;

/// One record of a batch, as the cleaner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordView<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// Null value: a tombstone.
    pub tombstone: bool,
    /// The whole record, length prefix included (copied verbatim when kept).
    pub raw: &'a [u8],
}

/// The records section of a batch, decompressed if needed.
pub(crate) struct PlainRecords {
    pub header: BatchHeader,
    pub plain: Vec<u8>,
}

fn records_error(error: RecordsError) -> StorageError {
    StorageError::Corrupt(format!("stored batch: {error}"))
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("stored batch: {what}"))
}

/// Decompresses the records section of `batch` (already validated).
pub(crate) fn plain_records(batch: &[u8]) -> Result<PlainRecords, StorageError> {
    let header = BatchHeader::parse(batch).map_err(StorageError::InvalidBatch)?;
    let body = batch
        .get(BATCH_HEADER_BYTES..)
        .ok_or_else(|| corrupt("shorter than its header"))?;
    let plain = match header.compression() {
        Some(Compression::None) => body.to_vec(),
        Some(codec) => decompress(codec, body).map_err(records_error)?,
        None => return Err(corrupt("unknown codec")),
    };
    Ok(PlainRecords { header, plain })
}

impl PlainRecords {
    /// Every record, in order.
    pub(crate) fn records(&self) -> Result<Vec<RecordView<'_>>, StorageError> {
        let count = usize::try_from(self.header.record_count)
            .map_err(|_| corrupt("negative record count"))?;
        if count > self.plain.len() {
            return Err(corrupt("record count larger than the records section"));
        }
        let mut out = Vec::with_capacity(count);
        let mut position = 0usize;
        for _ in 0..count {
            let (body_len, body_start) = read_varint(&self.plain, position)?;
            let body_len =
                usize::try_from(body_len).map_err(|_| corrupt("negative record length"))?;
            let end = body_start
                .checked_add(body_len)
                .filter(|&end| end <= self.plain.len())
                .ok_or_else(|| corrupt("record runs past the batch"))?;
            let body = &self.plain[body_start..end];
            // attributes (1 byte), timestamp delta, offset delta, key, value.
            let mut at = 1usize;
            if body.is_empty() {
                return Err(corrupt("empty record"));
            }
            let (_, next) = read_varint(body, at)?;
            at = next;
            let (offset_delta, next) = read_varint(body, at)?;
            at = next;
            let (key, next) = read_nullable(body, at)?;
            at = next;
            let (value, _) = read_nullable(body, at)?;
            out.push(RecordView {
                offset: self.header.base_offset + offset_delta,
                key,
                tombstone: value.is_none(),
                raw: &self.plain[position..end],
            });
            position = end;
        }
        if position != self.plain.len() {
            return Err(corrupt("bytes after the last record"));
        }
        Ok(out)
    }
}

/// Builds `original` with only `kept` records (raw record bytes, in order). Header fields other than
/// length, record count and CRC stay as they were.
pub(crate) fn rebuild_batch(original: &[u8], kept: &[&[u8]]) -> Result<Vec<u8>, StorageError> {
    let header = BatchHeader::parse(original).map_err(StorageError::InvalidBatch)?;
    let codec = header
        .compression()
        .ok_or_else(|| corrupt("unknown codec"))?;
    debug_assert!(!kept.is_empty(), "empty batches are dropped, not rebuilt");
    let plain: Vec<u8> = kept.concat();
    let body = match codec {
        Compression::None => plain,
        codec => compress(codec, &plain).map_err(records_error)?,
    };
    let total = BATCH_HEADER_BYTES + body.len();
    let batch_length = i32::try_from(total - LENGTH_PREFIX_BYTES)
        .map_err(|_| corrupt("rewritten batch too large"))?;
    let record_count = i32::try_from(kept.len()).map_err(|_| corrupt("too many records"))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&original[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(&body);
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&record_count.to_be_bytes());
    debug_assert_eq!(CRC_AT + 4, CRC_START);
    let crc = crc32c_of(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// A zigzag varint (up to 64 bits) at `at`; returns the value and the position after it.
fn read_varint(bytes: &[u8], mut at: usize) -> Result<(i64, usize), StorageError> {
    let mut raw: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *bytes.get(at).ok_or_else(|| corrupt("truncated varint"))?;
        at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift >= 64 {
            return Err(corrupt("varint too long"));
        }
    }
    let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
    Ok((value, at))
}

/// A varint-length-prefixed byte string, `None` for length -1.
fn read_nullable(bytes: &[u8], at: usize) -> Result<(Option<&[u8]>, usize), StorageError> {
    let (len, at) = read_varint(bytes, at)?;
    if len == -1 {
        return Ok((None, at));
    }
    let len = usize::try_from(len).map_err(|_| corrupt("negative length"))?;
    let end = at
        .checked_add(len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| corrupt("field runs past the record"))?;
    Ok((Some(&bytes[at..end]), end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbroker_protocol::batch::{set_base_offset, validate_log_batch, BatchError};
    use ringbroker_protocol::records::{decode_records, BatchBuilder, Record};

    fn keyed_batch(codec: Compression, records: &[(Option<&str>, Option<&str>)]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(codec);
        builder.set_producer(7, 3, 100);
        for (key, value) in records {
            builder
                .push(&Record {
                    key: key.map(str::as_bytes),
                    value: value.map(str::as_bytes),
                    headers: &[],
                    timestamp_ms: 1_000,
                })
                .expect("push");
        }
        let mut bytes = builder.finish().expect("finish").to_vec();
        set_base_offset(&mut bytes, 50);
        bytes
    }

    #[test]
    fn rebuilt_batches_keep_offsets_producer_fields_and_a_valid_crc() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = keyed_batch(
                codec,
                &[
                    (Some("a"), Some("1")),
                    (Some("b"), Some("2")),
                    (None, Some("x")),
                    (Some("a"), None),
                ],
            );
            let plain = plain_records(&batch).expect("plain");
            let records = plain.records().expect("records");
            assert_eq!(records.len(), 4);
            assert_eq!(records[1].key, Some(&b"b"[..]));
            assert_eq!(records[2].key, None);
            assert!(records[3].tombstone && !records[0].tombstone);
            assert_eq!(records[3].offset, 53);
            let kept: Vec<&[u8]> = vec![records[1].raw, records[3].raw];
            let rebuilt = rebuild_batch(&batch, &kept).expect("rebuild");
            let header = validate_log_batch(&rebuilt).expect("valid");
            let original = BatchHeader::parse(&batch).expect("header");
            assert_eq!(header.record_count, 2);
            assert_eq!(header.last_offset_delta, original.last_offset_delta);
            assert_eq!(header.base_offset, 50);
            assert_eq!(header.producer_id, 7);
            assert_eq!(header.producer_epoch, 3);
            assert_eq!(header.base_sequence, 100);
            assert_eq!(header.max_timestamp, original.max_timestamp);
            let again = plain_records(&rebuilt).expect("plain");
            let offsets: Vec<i64> = again
                .records()
                .expect("records")
                .iter()
                .map(|r| r.offset)
                .collect();
            assert_eq!(offsets, vec![51, 53], "{codec:?}");
        }
    }

    #[test]
    fn stored_validation_accepts_gaps_but_not_damage() {
        let batch = keyed_batch(
            Compression::None,
            &[(Some("a"), Some("1")), (Some("b"), None)],
        );
        let records = plain_records(&batch).expect("plain");
        let kept: Vec<&[u8]> = vec![records.records().expect("records")[1].raw];
        let mut rebuilt = rebuild_batch(&batch, &kept).expect("rebuild");
        assert!(validate_log_batch(&rebuilt).is_ok());
        let last = rebuilt.len() - 1;
        rebuilt[last] ^= 0xff;
        assert!(matches!(
            validate_log_batch(&rebuilt),
            Err(BatchError::CrcMismatch { .. })
        ));
        // Client-side decoding of an uncompacted batch still agrees with our view.
        let decoded = decode_records(&batch).expect("decode");
        assert_eq!(decoded[1].value, None);
    }
}
